"""The latent explorers: the exported decoder, the ipywidgets explorer, and the HTML one in Chromium."""

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import vaelib
from vaelib.explorer import LatentExplorer, decode_layers, decoder_layers, explorer_html, to_ink

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CODES = [(0.0, 0.0), (1.23, -0.57), (-2.5, 2.2), (3.0, -3.0), (0.41, 1.76)]


@pytest.fixture(scope="module")
def trained(small):
    """The seed design (batch norm + dropout) trained briefly on real digits: BN statistics are not trivial."""
    config = vaelib.VAEConfig(epochs=2, device="cpu")
    model = vaelib.build_model(config)
    vaelib.fit(model, small, config, progress=False)
    return model.eval()


def png_pixels(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.mark.parametrize("activation", ["relu", "elu", "silu"])
def test_exported_layers_fold_batch_norm_exactly(trained, activation):
    model = trained if activation == "relu" else vaelib.VAE(vaelib.VAEConfig(activation=activation)).eval()
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)) * 2
    layers = decoder_layers(model)
    torch.testing.assert_close(decode_layers(layers, z).float(), model.decode(z).flatten(1), atol=1e-5, rtol=0)
    # what the page computes (int16 weights, a scale per row) stays far below one grey level (1/255)
    assert (decode_layers(layers, z, quantized=True) - model.decode(z).flatten(1).double()).abs().max() < 2e-4


def test_widget_shows_the_decoded_digit_for_programmatic_slider_moves(trained, small):
    explorer = LatentExplorer(trained, small.test.images, small.test.labels)
    for z in CODES:
        explorer.sliders[0].value, explorer.sliders[1].value = z  # as a user dragging the sliders
        shown = png_pixels(explorer.image.value)[::explorer.scale, ::explorer.scale]
        expected = to_ink(trained.decode(torch.tensor([z]))[0, 0])
        assert np.array_equal(shown, expected), z
    explorer.start.value = "test digit 3"
    image = small.test.images[int((small.test.labels == 3).nonzero()[0])]
    torch.testing.assert_close(explorer.z, vaelib.latent_means(trained, image[None])[0].clamp(-3, 3))
    row, col = vaelib.explorer._pixel_of(explorer.z, 300, 3.0)
    assert tuple(png_pixels(explorer.map.value)[row, col, :3]) == (255, 255, 255)  # the marker's centre


def test_explorer_page_is_self_contained_and_small(trained, small):
    html = explorer_html(trained, small.test.images, small.test.labels)
    assert len(html.encode()) < 1_000_000
    for remote in ("http://", "https://", "<link", "src=\"//"):
        assert remote not in html


# --- in a real browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium); CI installs it")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def set_code(page, root: str, z) -> list[float]:
    """Move the sliders of the explorer `root` (a CSS selector) like a user; return the values they took."""
    return page.evaluate("""([root, z]) => {
        const inputs = [...document.querySelector(root).querySelectorAll("input[type=range]")];
        z.forEach((v, d) => { inputs[d].value = v; inputs[d].dispatchEvent(new Event("input")); });
        return inputs.map(el => parseFloat(el.value));
    }""", [root, list(z)])


def canvas_ink(page, root: str) -> np.ndarray:
    data = page.evaluate("""(root) => {
        const c = document.querySelector(root).querySelector("canvas");
        return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data);
    }""", root)
    return np.array(data, dtype=np.int16).reshape(28, 28, 4)[:, :, 0]


def max_error_in_browser(page, root: str, model) -> int:
    """Largest difference, in grey levels, between the page's canvas and PyTorch over several codes."""
    worst = 0
    for z in CODES:
        used = set_code(page, root, z)
        expected = to_ink(model.decode(torch.tensor([used], dtype=torch.float32))[0, 0]).astype(np.int16)
        worst = max(worst, int(np.abs(canvas_ink(page, root) - expected).max()))
    return worst


def open_snippet(browser, html: str, tmp_path: Path):
    path = tmp_path / "explorer.html"
    path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{html}</body></html>")
    page = browser.new_page()
    page.goto(path.as_uri())
    return page


def test_html_explorer_decodes_like_pytorch_in_chromium(browser, trained, small, tmp_path):
    page = open_snippet(browser, explorer_html(trained, small.test.images, small.test.labels), tmp_path)
    assert max_error_in_browser(page, ".vaelib-explorer", trained) <= 1  # at most 1/255 per pixel
    box = page.locator(".vaelib-explorer .map").bounding_box()
    page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + 0.25 * box["height"])  # z = (1.5, 1.5)
    z = page.evaluate("[...document.querySelectorAll('.vaelib-explorer input')].map(e => parseFloat(e.value))")
    assert z == pytest.approx([1.5, 1.5], abs=0.03)
    expected = to_ink(trained.decode(torch.tensor([z], dtype=torch.float32))[0, 0]).astype(np.int16)
    assert np.abs(canvas_ink(page, ".vaelib-explorer") - expected).max() <= 1
    shot = tmp_path / "explorer.png"
    page.screenshot(path=str(shot))
    ms = float(page.evaluate("document.querySelector('.vaelib-explorer').dataset.decodeMs"))
    print(f"\nexplorer: {len(page.content().encode()) / 1e3:.0f} kB, decode {ms:.2f} ms per move, screenshot {shot}")


def test_browser_comparison_catches_a_perturbed_weight(browser, trained, small, tmp_path):
    perturbed = vaelib.VAE(trained.config)
    perturbed.load_state_dict(trained.state_dict())
    with torch.no_grad():
        perturbed.to_logits.bias[400] += 0.5  # one number out of ~135,000
    page = open_snippet(browser, explorer_html(perturbed.eval()), tmp_path)
    assert max_error_in_browser(page, ".vaelib-explorer", trained) > 1


def test_built_book_page_has_a_working_explorer(browser, mnist):
    page_path = ROOT / "_build" / "html" / "notebooks" / "05_latent_space.html"
    if not page_path.exists():
        pytest.skip("book not built; run `make book` first")
    model, _ = vaelib.load_run(vaelib.run_dir_for(vaelib.book.RECIPE, mnist), device="cpu")
    page = browser.new_page()
    page.goto(page_path.as_uri())
    assert page.locator(".vaelib-explorer").count() == 1
    assert max_error_in_browser(page, ".vaelib-explorer", model) <= 1


def test_explorer_refuses_a_conditional_model_clearly():
    model = vaelib.VAE(vaelib.VAEConfig(num_classes=10))
    with pytest.raises(ValueError, match="conditional"):
        vaelib.explorer.decoder_layers(model)


def test_explorer_refuses_a_decoder_whose_mean_is_not_a_sigmoid():
    model = vaelib.VAE(vaelib.VAEConfig(likelihood="discretized_logistic"))
    with pytest.raises(ValueError, match="likelihood is 'discretized_logistic'"):
        vaelib.explorer.decoder_layers(model)
