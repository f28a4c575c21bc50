package dashboards_test

import (
	"encoding/json"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func readYAML(t *testing.T, file string, into any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

type composeService struct {
	Image       string            `yaml:"image"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []any             `yaml:"volumes"`
	Command     []string          `yaml:"command"`
}

// mounts returns a service's mounts as target → source (a bind's path, or
// "volume:<name>[/<subpath>]").
func (s composeService) mounts(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, v := range s.Volumes {
		switch m := v.(type) {
		case string:
			parts := strings.Split(m, ":")
			if len(parts) < 2 {
				t.Fatalf("mount %q", m)
			}
			src := parts[0]
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				src = "volume:" + src
			}
			out[parts[1]] = src
		case map[string]any:
			src := "volume:" + m["source"].(string)
			if vol, ok := m["volume"].(map[string]any); ok && vol["subpath"] != nil {
				src += "/" + vol["subpath"].(string)
			}
			out[m["target"].(string)] = src
		}
	}
	return out
}

// TestProvisioning checks that compose.yaml, the Grafana provisioning, the
// Prometheus configuration and the secrets script agree: compose cannot be
// run here (no Docker engine), so what one names the other must provide.
func TestProvisioning(t *testing.T) {
	var compose struct {
		Services map[string]composeService `yaml:"services"`
	}
	readYAML(t, "../../compose.yaml", &compose)
	grafana, prom := compose.Services["grafana"], compose.Services["prometheus"]
	if grafana.Image == "" || prom.Image == "" {
		t.Fatal("compose.yaml has no grafana or prometheus service")
	}
	for name, s := range map[string]composeService{"grafana": grafana, "prometheus": prom} {
		if !regexp.MustCompile(`:v?\d+\.\d+\.\d+$`).MatchString(s.Image) {
			t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
		}
	}
	if !regexp.MustCompile(`(^|,)grafana-clickhouse-datasource \d+\.\d+\.\d+(,|$)`).MatchString(grafana.Environment["GF_INSTALL_PLUGINS"]) {
		t.Errorf("GF_INSTALL_PLUGINS %q: want grafana-clickhouse-datasource at a pinned version", grafana.Environment["GF_INSTALL_PLUGINS"])
	}

	// Grafana's mounts: provisioning, dashboards, secrets.
	gm := grafana.mounts(t)
	if gm["/etc/grafana/provisioning"] != "./deploy/grafana/provisioning" {
		t.Errorf("grafana mounts %v: want ./deploy/grafana/provisioning at /etc/grafana/provisioning", gm)
	}
	var providers struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "../../deploy/grafana/provisioning/dashboards/dashboards.yaml", &providers)
	if len(providers.Providers) != 1 || providers.Providers[0].Type != "file" ||
		gm[providers.Providers[0].Options.Path] != "./deploy/grafana/dashboards" {
		t.Errorf("dashboard provider %+v: want a file provider at the mount of ./deploy/grafana/dashboards (%v)", providers, gm)
	}
	if home := grafana.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		if _, err := os.Stat("../../deploy/grafana/dashboards/" + path.Base(home)); err != nil || path.Dir(home) != providers.Providers[0].Options.Path {
			t.Errorf("home dashboard %s: %v", home, err)
		}
	}

	// Datasources: what the dashboards use, the ClickHouse one as queryapi
	// with its password from a file of the grafana secrets folder.
	var ds struct {
		Datasources []struct {
			Name, Type, UID, URL string
			JSONData             map[string]any    `yaml:"jsonData"`
			Secure               map[string]string `yaml:"secureJsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, "../../deploy/grafana/provisioning/datasources/datasources.yaml", &ds)
	types := map[string]string{}
	for _, d := range ds.Datasources {
		types[d.UID] = d.Type
		switch d.Type {
		case "prometheus":
			if d.URL != "http://prometheus:9090" {
				t.Errorf("prometheus datasource url %q", d.URL)
			}
		case "grafana-clickhouse-datasource":
			j := d.JSONData
			if j["host"] != "clickhouse" || j["port"] != 9000 || j["protocol"] != "native" || j["username"] != "queryapi" || j["defaultDatabase"] != "ledger" {
				t.Errorf("clickhouse datasource %v: want clickhouse:9000 native, queryapi, ledger", j)
			}
			m := regexp.MustCompile(`^\$__file\{(.+)\}$`).FindStringSubmatch(d.Secure["password"])
			if m == nil {
				t.Fatalf("clickhouse datasource password %q: want $__file{…}", d.Secure["password"])
			}
			dir, file := path.Split(m[1])
			if gm[strings.TrimSuffix(dir, "/")] != "volume:secrets/grafana" {
				t.Errorf("password file %s: not in the grafana secrets folder mounted (%v)", m[1], gm)
			}
			script, err := os.ReadFile("../../deploy/compose/init-secrets.sh")
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`cp "\$S/gen/` + regexp.QuoteMeta(file) + `"[^\n]*"\$S/grafana/"`).Match(script) {
				t.Errorf("init-secrets.sh does not copy %s into grafana/", file)
			}
			if !strings.Contains(string(script), "rnd >\"$S/gen/grafana-admin\"") || path.Base(grafana.Environment["GF_SECURITY_ADMIN_PASSWORD__FILE"]) != "grafana-admin" {
				t.Errorf("Grafana's admin password: not made by init-secrets.sh or not read from the secrets")
			}
		default:
			t.Errorf("unexpected datasource type %q", d.Type)
		}
	}
	for _, f := range []string{"ledger-analytics.json", "pipeline-health.json"} {
		b, err := os.ReadFile(dashboardsDir + f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title      string `json:"title"`
				Datasource struct {
					Type, UID string
				} `json:"datasource"`
				Targets []struct {
					Datasource struct {
						Type, UID string
					} `json:"datasource"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Panels {
			for _, ref := range append([]struct{ Type, UID string }{p.Datasource}, func() (r []struct{ Type, UID string }) {
				for _, tg := range p.Targets {
					r = append(r, tg.Datasource)
				}
				return
			}()...) {
				if types[ref.UID] == "" || types[ref.UID] != ref.Type {
					t.Errorf("%s: panel %q uses datasource %+v, not provisioned", f, p.Title, ref)
				}
			}
		}
	}

	// Prometheus: its files mounted where its flags and rule_files say,
	// and every scrape target an admin listener compose gives that service.
	pm := prom.mounts(t)
	if pm["/etc/prometheus/prometheus.yml"] != "./deploy/prometheus/prometheus.yml" || !strings.Contains(strings.Join(prom.Command, " "), "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus: config not mounted where --config.file points (%v, %v)", pm, prom.Command)
	}
	var pc struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "../../deploy/prometheus/prometheus.yml", &pc)
	for _, r := range pc.RuleFiles {
		if pm[r] != "./deploy/prometheus/"+path.Base(r) {
			t.Errorf("rule file %s not mounted from deploy/prometheus (%v)", r, pm)
		}
	}
	scraped := map[string]bool{}
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, _ := strings.Cut(target, ":")
				if host == "localhost" {
					continue
				}
				svc, ok := compose.Services[host]
				if !ok || !strings.HasSuffix(svc.Environment["ADMIN_ADDR"], ":"+port) {
					t.Errorf("scrape target %s (job %s): compose service %q has ADMIN_ADDR %q", target, sc.JobName, host, svc.Environment["ADMIN_ADDR"])
				}
				scraped[host] = true
			}
		}
	}
	for _, b := range []string{"ingest", "projector", "queryapi"} {
		if !scraped[b] {
			t.Errorf("prometheus.yml does not scrape %s", b)
		}
	}
}
