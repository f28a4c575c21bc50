package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// ChromiumEnv names a Chromium (or Chrome) binary for browser tests; unset,
// Chromium looks for the usual names on PATH (Debian's package installs
// /usr/bin/chromium).
const ChromiumEnv = "LEDGER_CHROMIUM"

// Chromium returns the path of a headless-capable Chromium for t. When
// none is found, t fails in CI and is skipped otherwise, with a message
// that says how to provide one; a LEDGER_CHROMIUM that names no executable
// fails t, CI or not (it was asked for).
func Chromium(t testing.TB) string {
	t.Helper()
	SkipIfUnitOnly(t, "Chromium")
	if p := os.Getenv(ChromiumEnv); p != "" {
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			t.Fatalf("Chromium: %s=%s is set but is not an executable", ChromiumEnv, p)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const how = "install Debian's chromium package (apt-get install chromium; scripts/test does it in CI) or set " + ChromiumEnv
	if inCI() {
		t.Fatalf("Chromium: not found (CI is set, so a missing browser is a failure); %s", how)
	}
	t.Skipf("Chromium: not found; to run this test, %s", how)
	return ""
}
