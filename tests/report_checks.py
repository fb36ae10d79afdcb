"""Opens an HTML report in headless Chromium: screenshot, console errors, images, verdict."""
import html
import json
import re
import subprocess
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
# Runs first in the page: records errors, then on load writes its findings into the DOM.
_CHECKER = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.target.src)), true);
const consoleError = console.error;
console.error = (...args) => { window.__errors.push(args.join(' ')); consoleError(...args); };
window.addEventListener('load', () => {
  const verdict = document.getElementById('verdict');
  const checks = {
    errors: window.__errors,
    images: Array.from(document.images).map(i => ({ok: i.complete && i.naturalWidth > 0
                                                     && i.naturalHeight > 0, alt: i.alt})),
    verdict: verdict && verdict.offsetHeight > 0 ? verdict.innerText : null,
  };
  const out = document.createElement('pre');
  out.id = 'checks';
  out.textContent = 'CHECKS' + JSON.stringify(checks) + 'END';
  document.body.appendChild(out);
});
</script>"""


def browser_checks(html_path: Path, work_dir: Path) -> dict:
    """{"errors": [...], "images": [{"ok", "alt"}...], "verdict": text or None,
    "screenshot": path}: the page as Chromium renders it."""
    checked = work_dir / "checked.html"
    checked.write_text(html_path.read_text().replace("<head>", "<head>" + _CHECKER, 1))
    dom = _chromium(work_dir / "profile-dom", "--dump-dom", "--virtual-time-budget=10000",
                    checked.as_uri())
    findings = re.search(r'<pre id="checks">CHECKS(.*)END</pre>', dom, re.S)
    assert findings, "the page never finished loading: " + dom[-2000:]
    checks = json.loads(html.unescape(findings.group(1)))
    screenshot = work_dir / "report.png"
    _chromium(work_dir / "profile-shot", f"--screenshot={screenshot}",
              "--window-size=1280,3000", html_path.as_uri())
    return {**checks, "screenshot": screenshot}


def _chromium(profile: Path, *arguments: str) -> str:
    result = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                             *arguments], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
