package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// functions are PromQL's functions and aggregation operators: an
// identifier followed by "(" must be one of them.
var functions = set("abs absent absent_over_time acos acosh asin asinh atan atanh avg avg_over_time bottomk ceil changes " +
	"clamp clamp_max clamp_min cos cosh count count_over_time count_values day_of_month day_of_week day_of_year " +
	"days_in_month deg delta deriv exp floor group histogram_avg histogram_count histogram_fraction histogram_quantile " +
	"histogram_stddev histogram_stdvar histogram_sum holt_winters hour idelta increase irate label_join label_replace " +
	"last_over_time limitk limit_ratio ln log10 log2 mad_over_time max max_over_time min min_over_time minute month " +
	"predict_linear present_over_time quantile quantile_over_time rad rate resets round scalar sgn sin sinh sort " +
	"sort_by_label sort_by_label_desc sort_desc sqrt stddev stddev_over_time stdvar stdvar_over_time sum " +
	"sum_over_time tan tanh time timestamp topk vector year")

// keywords are PromQL's operators and modifiers spelled as words.
var keywords = set("and or unless bool offset inf nan by without on ignoring group_left group_right")

// Synthetic are the series Prometheus makes itself for every target; they
// are not exported by a binary.
var Synthetic = set("up scrape_duration_seconds scrape_samples_scraped scrape_samples_post_metric_relabeling scrape_series_added")

func set(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

var (
	quoted   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	braces   = regexp.MustCompile(`\{[^{}]*\}`)
	brackets = regexp.MustCompile(`\[[^\[\]]*\]`)
	grouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	variable = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)
	token    = regexp.MustCompile(`[0-9][0-9.]*(?:[eE][+-]?[0-9]+)?[a-zA-Z]*|[A-Za-z_:][A-Za-z0-9_:]*`)
)

// MetricNames returns the metric names a PromQL expression reads: every
// identifier used as a selector (followed by "{", "[" or nothing), minus
// functions, keywords, label names of by/without/on/ignoring lists and
// Grafana variables. An identifier called like a function that PromQL does
// not have is an error. The names are sorted and unique.
func MetricNames(expr string) ([]string, error) {
	// A selector's matchers and a range are blanked, not removed, so that
	// what followed the name is still seen.
	s := quoted.ReplaceAllString(expr, `""`)
	s = variable.ReplaceAllString(s, "0")
	s = braces.ReplaceAllString(s, "{}")
	s = brackets.ReplaceAllString(s, "[]")
	s = grouping.ReplaceAllString(s, " ")
	seen := map[string]bool{}
	for _, loc := range token.FindAllStringIndex(s, -1) {
		w := s[loc[0]:loc[1]]
		if w[0] >= '0' && w[0] <= '9' {
			continue // a number or a duration
		}
		next := strings.TrimLeft(s[loc[1]:], " \t\n")
		switch {
		case strings.HasPrefix(next, "("):
			if !functions[w] && !keywords[w] {
				return nil, fmt.Errorf("%q: %s( is not a PromQL function", expr, w)
			}
		case keywords[w]:
		default:
			seen[w] = true
		}
	}
	var out []string
	for w := range seen {
		out = append(out, w)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("%q: no metric", expr)
	}
	return out, nil
}

// Expr is one PromQL expression and where it comes from.
type Expr struct {
	Where string // "<file>: <panel or alert>"
	Expr  string
}

// PrometheusExprs returns every PromQL expression of the Prometheus
// dashboards in dir (panels whose datasource is the Prometheus one) and of
// the rules files given.
func PrometheusExprs(dashboards []string, rules []string) ([]Expr, error) {
	var out []Expr
	for _, f := range dashboards {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var d struct {
			Panels []promPanel `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		var walk func([]promPanel)
		walk = func(ps []promPanel) {
			for _, p := range ps {
				for _, t := range p.Targets {
					out = append(out, Expr{filepath.Base(f) + ": " + p.Title + " (" + t.RefID + ")", t.Expr})
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
	}
	for _, f := range rules {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var r struct {
			Groups []struct {
				Name  string `yaml:"name"`
				Rules []struct {
					Alert  string `yaml:"alert"`
					Record string `yaml:"record"`
					Expr   string `yaml:"expr"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, g := range r.Groups {
			for _, rule := range g.Rules {
				out = append(out, Expr{filepath.Base(f) + ": " + g.Name + "/" + rule.Alert + rule.Record, rule.Expr})
			}
		}
	}
	return out, nil
}

type promPanel struct {
	Title   string      `json:"title"`
	Panels  []promPanel `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}
