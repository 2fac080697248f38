"""`make lab`: JupyterLab serves the notebooks with the project kernel and the widgets extension, and an
executed notebook's explore panel renders its figure in a real browser (Debian's chromium, via selenium).

One server for the module, headless on a free loopback port with a token. Its root holds the
repository's ``notebooks/`` (linked, as `make lab` serves it) and one notebook executed here with
papermill on a cut-down smoke grid (two runs, one epoch: about half a minute on a CPU).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
WIDGETS_EXTENSION = "@jupyter-widgets/jupyterlab-manager"
EXPLORED = "01_sparse_transfer"
# two runs of one epoch: enough for the notebook's figures and its explore panel
SMALL_GRID = {"datasets": ["digits"], "families": {"gmp-r18": ["smallcnn/dense", ["smallcnn/prune-90"]]},
              "shots": [10], "methods": ["ilm"], "seeds": [0], "epochs": 1, "eval_every": 1}
INSTALL_BROWSER = ("install Debian's chromium and its driver to run it: "
                   "`apt-get install -y --no-install-recommends chromium chromium-driver` (.ci/run does)")

pytestmark = pytest.mark.lab


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, root: Path, runtime: Path):
        self.root, self.port, self.token = root, _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("VPCOST_HEADLESS", "MPLBACKEND")}  # live front end
        env.update(JUPYTER_RUNTIME_DIR=str(runtime / "runtime"), JUPYTER_CONFIG_DIR=str(runtime / "config"),
                   JUPYTERLAB_WORKSPACES_DIR=str(runtime / "workspaces"))
        jupyter_lab = Path(sys.executable).with_name("jupyter-lab")
        self.log = open(runtime / "lab.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [str(jupyter_lab), "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             "--expose-app-in-browser", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             "--LabApp.extension_manager=readonly", *(["--allow-root"] if os.geteuid() == 0 else [])],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def get(self, path: str):
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def wait(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                self.get("/api/status")
                return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise AssertionError("JupyterLab did not start:\n" + Path(self.log.name).read_text()[-3000:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").symlink_to(ROOT / "notebooks", target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def lab(lab_root, tmp_path_factory):
    server = Lab(lab_root, tmp_path_factory.mktemp("jupyter"))
    server.wait()
    yield server
    server.stop()
    assert server.proc.returncode is not None


@pytest.fixture(scope="module")
def executed_notebook(lab_root) -> Path:
    """01_sparse_transfer executed headlessly on a two-run smoke grid, inside the server's root."""
    import papermill

    out = lab_root / "executed" / f"{EXPLORED}.ipynb"
    out.parent.mkdir()
    os.environ["VPCOST_HEADLESS"] = "1"  # the papermill kernel skips the panel; the browser's kernel will not
    try:
        papermill.execute_notebook(str(ROOT / "notebooks" / f"{EXPLORED}.ipynb"), str(out), kernel_name="python3",
                                   cwd=str(ROOT / "notebooks"), progress_bar=False,
                                   parameters={"profile": "smoke", "output_dir": str(lab_root / "outputs"),
                                               **SMALL_GRID})
    finally:
        os.environ.pop("VPCOST_HEADLESS", None)
    return out


def test_lab_lists_the_notebooks_with_the_project_kernel_and_the_widgets_extension(lab):
    listing = lab.get("/api/contents/notebooks?content=1")
    assert sorted(item["name"] for item in listing["content"] if item["type"] == "notebook") == NOTEBOOKS
    assert len(NOTEBOOKS) >= 7
    extensions = {ext["name"]: ext for ext in lab.get("/lab/api/extensions")}
    assert WIDGETS_EXTENSION in extensions, sorted(extensions)
    assert extensions[WIDGETS_EXTENSION]["enabled"] and extensions[WIDGETS_EXTENSION]["installed"]
    spec = lab.get("/api/kernelspecs")["kernelspecs"]["python3"]["spec"]
    assert Path(spec["argv"][0]).resolve() == Path(sys.executable).resolve()  # the project's environment


def test_make_lab_serves_the_notebooks_folder():
    dry = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "jupyter-lab --ServerApp.root_dir=notebooks" in dry


def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra has it)")
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip(f"no {'chromium' if chromium is None else 'chromedriver'} found; " + INSTALL_BROWSER)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


KERNEL_IDLE = """
const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
return !!(k && w.sessionContext.isReady && k.status === 'idle' && w.content && w.content.widgets.length);
"""
PANEL_IMAGE = "return document.querySelector('.widget-output img[src^=\"data:image/png\"]');"


def _until(check, timeout: float, what: str, driver, folder: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    driver.save_screenshot(str(folder / "timeout.png"))
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (screenshot: {folder / 'timeout.png'})")


def test_the_explore_panel_renders_its_figure_in_a_browser(lab, executed_notebook, tmp_path):
    browser = _browser()
    try:
        rel = executed_notebook.relative_to(lab.root).as_posix()
        browser.get(f"{lab.url}/lab/tree/{rel}?token={lab.token}")
        _until(lambda: browser.execute_script(KERNEL_IDLE), 120, "the notebook and its kernel", browser, tmp_path)
        # the panel needs the notebook's results: run every cell (finished runs are read from the store)
        browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
        image = _until(lambda: browser.execute_script(PANEL_IMAGE), 240, "the explore panel's figure", browser,
                       tmp_path)
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", image)
        time.sleep(1)
        assert image.size["width"] > 200 and image.size["height"] > 150, image.size
        shot = tmp_path / "explore-panel.png"
        assert browser.save_screenshot(str(shot))
        errors = browser.execute_script(
            "return [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type*=\"error\"]')]"
            ".map(e => e.innerText.slice(0, 500));")
        assert errors == [], errors
    finally:
        browser.quit()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    from PIL import Image

    with Image.open(shot) as png:
        assert png.size == (1400, 1000) or png.size[0] >= 1000
        lo, hi = png.convert("L").getextrema()
        assert hi - lo > 100  # not a blank page
