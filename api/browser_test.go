package api_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"simworker/api"
)

// TestTryItFromTheReference does what a person does on GET /docs: paste a
// token under Authorize, open "Create a SIM", send its example, and see
// 201 — from a real headless Chromium against the real API and a worker.
func TestTryItFromTheReference(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the browser test starts Chromium")
	}
	t.Parallel()
	browser := "/usr/bin/chromium"
	if p := os.Getenv("CHROMIUM"); p != "" {
		browser = p
	}
	if _, err := exec.LookPath(browser); err != nil {
		t.Fatalf("Chromium is needed (make chromium installs Debian's with apt-get; or set CHROMIUM): %v", err)
	}
	w := setup(t, api.Config{})
	w.startWorker()
	token := w.token("u-alice")

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1400))
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)

	op := `#operations-SIMs-createSim`
	status := op + ` .live-responses-table .response .response-col_status`
	err := chromedp.Do(ctx,
		chromedp.Navigate(w.srv.URL+"/docs"),
		// Authorize: the button at the top, the token in the bearer field.
		chromedp.Click(chromedp.CSS(`.auth-wrapper button.authorize`)),
		chromedp.SendKeys(chromedp.CSS(`.auth-container input`), token),
		chromedp.Click(chromedp.CSS(`.auth-btn-wrapper button.authorize`)),
		chromedp.Click(chromedp.CSS(`.auth-btn-wrapper button.btn-done`)),
		// Create a SIM, with the document's example body as it stands.
		chromedp.Click(chromedp.CSS(op+` .opblock-summary`)),
		chromedp.Click(chromedp.CSS(op+` button.execute`)),
		chromedp.WaitVisible(chromedp.CSS(status)),
	)
	if err != nil {
		t.Fatalf("could not send Create a SIM from the page: %v", err)
	}
	got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(status)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(strings.TrimSpace(got), "201") {
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(op+` .live-responses-table .response .response-col_description`)))
		t.Fatalf("the page got %q: %s", got, body)
	}
	if n := w.sims(); n != 1 {
		t.Fatalf("%d SIMs after the request from the page, want 1", n)
	}
}
