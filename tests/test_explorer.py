"""The latent explorers.

The exported networks, the ipywidgets explorer, and the HTML one in Chromium.
"""

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import vaelib
from vaelib import export
from vaelib.drawing import mnist_style
from vaelib.explorer import LatentExplorer, explorer_html, to_ink

ROOT = Path(__file__).resolve().parents[1]
CODES = [(0.0, 0.0), (1.23, -0.57), (-2.5, 2.2), (3.0, -3.0), (0.41, 1.76)]
# a stroke in fractions of the pad's side
SEVEN = [(0.25, 0.2), (0.72, 0.2), (0.42, 0.85)]
RING = [
    (
        0.5 + 0.3 * math.cos(t / 24 * 2 * math.pi),
        0.5 + 0.35 * math.sin(t / 24 * 2 * math.pi),
    )
    for t in range(25)
]


@pytest.fixture(scope="module")
def trained(small):
    """The seed design (batch norm + dropout) trained briefly on real digits.

    Its batch norm statistics are not trivial.
    """
    config = vaelib.VAEConfig(epochs=2, device="cpu")
    model = vaelib.build_model(config)
    vaelib.fit(model, small, config, progress=False)
    return model.eval()


def png_pixels(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.mark.parametrize("activation", ["relu", "elu", "silu"])
def test_exported_layers_fold_batch_norm_exactly(trained, activation, small):
    model = (
        trained
        if activation == "relu"
        else vaelib.VAE(vaelib.VAEConfig(activation=activation)).eval()
    )
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)) * 2
    decoder = export.decoder_layers(model)
    torch.testing.assert_close(
        export.decoder_means(decoder, z).float(),
        model.decode(z).flatten(1),
        atol=1e-5,
        rtol=0,
    )
    x = small.test.images[:64]
    mu, logvar = model.encode(x)
    both = export.run_layers(
        export.encoder_layers(model), x.flatten(1)
    ).float()
    torch.testing.assert_close(
        both, torch.cat([mu, logvar], dim=1), atol=1e-5, rtol=0
    )
    # what the page computes (int16 weights, a scale per row) stays far below
    # one grey level (1/255)
    quantized = export.decoder_means(decoder, z, quantized=True)
    assert (quantized - model.decode(z).flatten(1).double()).abs().max() < 2e-4


def test_pack_round_trips_every_dtype_and_odd_sizes():
    rng = np.random.default_rng(0)
    arrays = {
        "a": rng.integers(-32767, 32768, 1001).astype(np.int16),
        "b": rng.standard_normal(7).astype(np.float32),
        "c": rng.integers(-127, 128, 3).astype(np.int8),
        "d": rng.integers(0, 256, 5).astype(np.uint8),
    }
    packed = export.pack(arrays)
    # safe in HTML, JSON and the page checks
    assert not set(packed["text"]) & set("&<>\"'\\/*|")
    back = export.unpack(packed)
    for name, array in arrays.items():
        assert back[name].dtype == array.dtype and np.array_equal(
            back[name], array
        ), name
    with pytest.raises(TypeError, match="float64"):
        export.pack({"x": np.zeros(3)})


def test_fixed_noise_scores_match_torch_distributions(trained, small):
    x = small.test.images[:16]
    eps = export.fixed_noise(2, draws=3)
    mu, logvar = trained.encode(x)
    sigma = torch.exp(0.5 * logvar)
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, sigma),
        torch.distributions.Normal(0.0, 1.0),
    ).sum(1)
    recon = torch.stack(
        [
            -torch.distributions.Bernoulli(
                logits=trained.decode_logits(mu + sigma * e),
                validate_args=False,
            )
            .log_prob(x.flatten(1))
            .sum(1)
            for e in eps
        ]
    ).mean(0)
    torch.testing.assert_close(
        export.fixed_noise_scores(trained, x, eps), (kl + recon).detach()
    )
    # fixed: the same draws every time
    assert torch.equal(export.fixed_noise(2, draws=3), eps)


def test_typicality_counts_reference_scores_above():
    quantiles = export.score_quantiles(
        torch.arange(100.0, -1.0, -1.0), points=101
    )
    # sorted, every value kept
    np.testing.assert_array_equal(quantiles, np.arange(101.0))
    assert export.percent_more_typical(-0.5, quantiles) == 100.0
    assert export.percent_more_typical(100.0, quantiles) == 0.0
    assert export.percent_more_typical(50.5, quantiles) == pytest.approx(
        100 * 50 / 101
    )


def test_widget_shows_the_decoded_digit_for_programmatic_slider_moves(
    trained, small
):
    explorer = LatentExplorer(trained, small.test.images, small.test.labels)
    for z in CODES:
        # as a user dragging the sliders
        explorer.sliders[0].value, explorer.sliders[1].value = z
        shown = png_pixels(explorer.image.value)[
            :: explorer.scale, :: explorer.scale
        ]
        expected = to_ink(trained.decode(torch.tensor([z]))[0, 0])
        assert np.array_equal(shown, expected), z
    explorer.start.value = "test digit 3"
    image = small.test.images[int((small.test.labels == 3).nonzero()[0])]
    torch.testing.assert_close(
        explorer.z, vaelib.latent_means(trained, image[None])[0].clamp(-3, 3)
    )
    row, col = vaelib.explorer._pixel_of(explorer.z, 300, 3.0)
    # the marker's centre
    assert tuple(png_pixels(explorer.map.value)[row, col, :3]) == (
        (255, 255, 255)
    )


def bar_ink(side: int = vaelib.explorer.PAD) -> np.ndarray:
    """A vertical bar, a '1', as the pad's 8-bit alpha: (side, side) uint8."""
    ink = np.zeros((side, side), np.uint8)
    ink[40:240, 125:155] = 255
    return ink


def test_widget_starts_from_a_drawing(trained, small):
    explorer = LatentExplorer(
        trained, small.test.images, small.test.labels, drawing=True
    )
    # what the pad's JavaScript sends when a stroke ends
    explorer.pad.ink = bar_ink().tobytes()
    x = torch.tensor(mnist_style(bar_ink() / 255), dtype=torch.float32)
    expected = vaelib.latent_means(trained, x[None, None])[0].clamp(-3, 3)
    torch.testing.assert_close(explorer.z, expected)
    # the processed input, enlarged 4 times
    shown = png_pixels(explorer.input.value)[::4, ::4]
    assert np.array_equal(shown, to_ink(x))
    with pytest.raises(ValueError, match="expected 280"):
        explorer.pad.ink = b"\x00" * 100


def test_explorer_page_is_self_contained(trained, small):
    html = explorer_html(
        trained,
        small.test.images,
        small.test.labels,
        drawing=True,
        reference=small.test.images,
    )
    for remote in ("http://", "https://", "<link", 'src="//', "import "):
        assert remote not in html
    assert html.count("<script") == 2  # the data and the code, both inline


def test_explorer_html_refuses_bad_arguments_clearly(trained):
    with pytest.raises(ValueError, match="reference=splits.test.images"):
        explorer_html(trained, drawing=True)
    with pytest.raises(
        ValueError, match="dims must name latent dimensions 0..1"
    ):
        explorer_html(trained, dims=[2])


# --- in a real browser -------------------------------------------------------


def set_code(page, root: str, z) -> list[float]:
    """Move the sliders of the explorer `root` (a CSS selector) like a user.

    Returns the values they took.
    """
    return page.evaluate(
        """([root, z]) => {
        const inputs = [...document.querySelector(root).querySelectorAll(".sliders input")];
        z.forEach((v, d) => { inputs[d].value = v; inputs[d].dispatchEvent(new Event("input")); });
        return inputs.map(el => parseFloat(el.value));
    }""",  # noqa: E501
        [root, list(z)],
    )


def canvas_ink(page, root: str, which: str = "canvas.decoded") -> np.ndarray:
    data = page.evaluate(
        """([root, which]) => {
        const c = document.querySelector(root).querySelector(which);
        return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data);
    }""",  # noqa: E501
        [root, which],
    )
    return np.array(data, dtype=np.int16).reshape(28, 28, 4)[:, :, 0]


def max_error_in_browser(page, root: str, model) -> int:
    """Largest grey-level difference between the page's canvas and PyTorch.

    It is taken over several codes.
    """
    worst = 0
    for z in CODES:
        used = set_code(page, root, z)
        expected = to_ink(
            model.decode(torch.tensor([used], dtype=torch.float32))[0, 0]
        ).astype(np.int16)
        worst = max(
            worst, int(np.abs(canvas_ink(page, root) - expected).max())
        )
    return worst


def open_snippet(browser, html: str, tmp_path: Path):
    path = tmp_path / "explorer.html"
    path.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head>"
        f"<body>{html}</body></html>"
    )
    page = browser.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector(".vaelib-explorer[data-ready='1']", timeout=20_000)
    return page


def mouse_stroke(page, root: str, points) -> None:
    """Press, move through `points` and release, like a user.

    The points are in fractions of the pad's side.
    """
    box = page.locator(f"{root} canvas.pad").bounding_box()
    at = [
        (box["x"] + u * box["width"], box["y"] + v * box["height"])
        for u, v in points
    ]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()


def draw(page, root: str, points) -> dict:
    """Draw one stroke through `points` (fractions of the pad) with the mouse.

    Returns the page's state after it.
    """
    before = int(
        page.evaluate(f"document.querySelector('{root}').dataset.updates || 0")
    )
    mouse_stroke(page, root, points)
    page.wait_for_function(
        f"Number(document.querySelector('{root}').dataset.updates) > {before}"
    )
    page.wait_for_timeout(100)  # the last animation frame's update
    return page.evaluate(
        """(root) => {
        const s = document.querySelector(root).vaelib.state, list = (a) => a ? Array.from(a) : null;
        return {ink: list(s.ink), input: list(s.input), mu: list(s.mu), logvar: list(s.logvar),
                recon: list(s.recon), score: s.score, percent: s.percent, ms: s.encodeMs,
                z: list(s.z), text: document.querySelector(root + " .result").textContent};
    }""",  # noqa: E501
        root,
    )


def drawing_errors(state: dict, model, reference: np.ndarray) -> dict:
    """How far the page's numbers for one drawing are from Python's.

    Python's are computed on the same ink.
    """
    ink = np.array(state["ink"]).reshape(
        vaelib.explorer.PAD, vaelib.explorer.PAD
    )
    x = mnist_style(ink)
    shown = torch.tensor(state["input"]).reshape(28, 28)
    xt = torch.tensor(x, dtype=torch.float32)[None, None]
    with torch.no_grad():
        mu, logvar = model.encode(xt)
        recon = model.decode(mu).flatten()
    score = export.fixed_noise_scores(
        model, xt, export.fixed_noise(model.config.latent_dim)
    )
    return {
        "input": float((shown - torch.tensor(x)).abs().max()),
        "mu": float((torch.tensor(state["mu"]) - mu[0]).abs().max()),
        "logvar": float(
            (torch.tensor(state["logvar"]) - logvar[0]).abs().max()
        ),
        "recon": float((torch.tensor(state["recon"]) - recon).abs().max()),
        "score": abs(state["score"] - float(score)),
        "percent": abs(
            state["percent"]
            - export.percent_more_typical(state["score"], reference)
        ),
    }


TOLERANCES = {
    "input": 1 / 255,
    "mu": 1e-3,
    "logvar": 1e-3,
    "recon": 1 / 255,
    "score": 0.01,
    "percent": 0,
}


def check_drawings(page, root: str, model, reference) -> list[dict]:
    """Draw a 7 and (after clearing) a ring; compare each with PyTorch.

    Returns the errors.
    """
    errors = []
    for stroke in (SEVEN, RING):
        page.locator(f"{root} button.clear").click()
        state = draw(page, root, stroke)
        assert "more typical than" in state["text"]
        # the sliders start from the drawing's code
        assert state["z"] == pytest.approx(state["mu"])
        errors.append(drawing_errors(state, model, reference))
    return errors


def page_reference(page, root: str) -> np.ndarray:
    return np.array(
        page.evaluate(f"""(async () => {{
        const root = document.querySelector('{root}');
        const meta = JSON.parse(root.querySelector('script.vaelib-meta').textContent);
        return Array.from((await VAELIB.unpack(meta.packed)).reference);
    }})()"""),  # noqa: E501
        dtype=np.float32,
    )


def test_html_explorer_decodes_like_pytorch_in_chromium(
    browser, trained, small, tmp_path
):
    page = open_snippet(
        browser,
        explorer_html(trained, small.test.images, small.test.labels),
        tmp_path,
    )
    # at most 1/255 per pixel
    assert max_error_in_browser(page, ".vaelib-explorer", trained) <= 1
    box = page.locator(".vaelib-explorer .map").bounding_box()
    # z = (1.5, 1.5)
    page.mouse.click(
        box["x"] + 0.75 * box["width"], box["y"] + 0.25 * box["height"]
    )
    z = page.evaluate(
        "[...document.querySelectorAll('.vaelib-explorer input')]"
        ".map(e => parseFloat(e.value))"
    )
    assert z == pytest.approx([1.5, 1.5], abs=0.03)
    expected = to_ink(
        trained.decode(torch.tensor([z], dtype=torch.float32))[0, 0]
    ).astype(np.int16)
    assert np.abs(canvas_ink(page, ".vaelib-explorer") - expected).max() <= 1


def test_kernel_pad_sends_the_ink_it_shows(browser, tmp_path):
    """The anywidget module, rendered with a stand-in for the widget model.

    A stroke ends, bytes go.
    """
    esm = vaelib.explorer._pad_module()
    path = tmp_path / "pad.html"
    path.write_text(
        "<!DOCTYPE html><html><body><div id='host'></div>"
        "<script type='module'>\n"
        "const url = URL.createObjectURL(new Blob("
        "[document.getElementById('esm').textContent], "
        "{type: 'text/javascript'}));\n"
        "const widget = (await import(url)).default;\n"
        "window.sent = [];\n"
        "const model = {get: (k) => ({size: 280})[k], "
        "set: (k, v) => window.sent.push([k, v]), "
        "save_changes: () => {}};\n"
        "widget.render({model, el: document.getElementById('host')});\n"
        "</script><script type='text/plain' id='esm'>"
        + esm
        + "</script></body></html>"
    )
    page = browser.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector("#host canvas.pad")
    state = draw_stroke(page, "#host", SEVEN)
    sent = page.evaluate(
        "() => window.sent.map(([k, v]) => "
        "[k, Array.from(new Uint8Array(v.buffer))])"
    )
    # once, when the stroke ended: not every frame
    assert [k for k, _ in sent] == ["ink"]
    assert np.array_equal(
        np.array(sent[0][1]), np.round(np.array(state) * 255)
    )
    pad = vaelib.explorer.drawing_pad()
    pad.ink = bytes(sent[0][1])
    # a real stroke, made MNIST-style in Python
    assert pad.mnist_input().sum() > 10


def draw_stroke(page, root: str, points) -> list[float]:
    """Draw one stroke on a bare pad with the mouse.

    Returns the pad's ink as the page reads it.
    """
    mouse_stroke(page, root, points)
    page.wait_for_function("window.sent.length > 0")
    page.wait_for_timeout(100)
    return page.evaluate(f"""() => {{
        const c = document.querySelector('{root} canvas.pad');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return Array.from({{length: c.width * c.height}}, (_, k) => d[4 * k + 3] / 255);
    }}""")  # noqa: E501


def test_drawn_digits_are_processed_encoded_and_scored_like_pytorch(
    browser, trained, small, tmp_path
):
    html = explorer_html(
        trained,
        small.test.images,
        small.test.labels,
        drawing=True,
        reference=small.test.images,
    )
    page = open_snippet(browser, html, tmp_path)
    reference = page_reference(page, ".vaelib-explorer")
    scores = export.fixed_noise_scores(
        trained, small.test.images, export.fixed_noise(2)
    )
    np.testing.assert_array_equal(reference, export.score_quantiles(scores))
    for errors in check_drawings(page, ".vaelib-explorer", trained, reference):
        print(
            "\ndrawing vs PyTorch:", {k: f"{v:.2g}" for k, v in errors.items()}
        )
        assert all(errors[k] <= TOLERANCES[k] for k in TOLERANCES), errors
    # the ring was the only stroke: nothing left
    page.locator(".vaelib-explorer button.undo").click()
    page.wait_for_function(
        "document.querySelector('.vaelib-explorer .result').textContent"
        ".startsWith('Draw a digit')"
    )
    zero = to_ink(trained.decode(torch.zeros(1, 2))[0, 0]).astype(np.int16)
    # back to z = 0
    assert np.abs(canvas_ink(page, ".vaelib-explorer") - zero).max() <= 1
    # no stale draws
    assert (canvas_ink(page, ".vaelib-explorer", "canvas.draw") == 255).all()
    box = page.locator(".vaelib-explorer canvas.pad").bounding_box()
    page.mouse.move(box["x"] + 50, box["y"] + 50)
    page.mouse.down(button="right")  # only the main button draws
    page.mouse.move(box["x"] + 150, box["y"] + 150, steps=5)
    page.mouse.up(button="right")
    page.wait_for_timeout(100)
    assert (
        page.evaluate(
            "document.querySelector('.vaelib-explorer').vaelib.pad.strokes.length"
        )
        == 0
    )
    page.screenshot(path=str(tmp_path / "drawing.png"))


def test_browser_comparison_catches_a_perturbed_weight(
    browser, trained, small, tmp_path
):
    perturbed = vaelib.VAE(trained.config)
    perturbed.load_state_dict(trained.state_dict())
    with torch.no_grad():
        # one decoder number out of ~135,000
        perturbed.to_logits.bias[400] += 0.5
    page = open_snippet(browser, explorer_html(perturbed.eval()), tmp_path)
    assert max_error_in_browser(page, ".vaelib-explorer", trained) > 1
    with torch.no_grad():
        perturbed.load_state_dict(trained.state_dict())
        perturbed.to_mu.bias[1] += 0.01  # one encoder number
    html = explorer_html(
        perturbed.eval(), drawing=True, reference=small.test.images[:100]
    )
    page = open_snippet(browser, html, tmp_path)
    reference = page_reference(page, ".vaelib-explorer")
    errors = check_drawings(page, ".vaelib-explorer", trained, reference)
    assert any(
        e[k] > TOLERANCES[k] for e in errors for k in ("mu", "logvar", "score")
    ), errors


# --- the book's pages --------------------------------------------------------


# page -> latent size of its explorer
BOOK_PAGES = {"05_latent_space": 2, "09_applications": 20}


@pytest.mark.parametrize("name", BOOK_PAGES)
def test_built_book_page_has_a_working_drawing_explorer(browser, mnist, name):
    page_path = ROOT / "_build" / "html" / "notebooks" / f"{name}.html"
    if not page_path.exists():
        pytest.skip("book not built; run `make book` first")
    size = page_path.stat().st_size
    assert size < vaelib.book.PAGE_BYTES, f"{name}.html is {size / 1e6:.2f} MB"
    model, _ = vaelib.load_run(
        vaelib.run_dir_for(vaelib.book.recipe(BOOK_PAGES[name]), mnist),
        device="cpu",
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(page_path.as_uri())
    page.wait_for_selector(".vaelib-explorer[data-ready='1']", timeout=20_000)
    assert page.locator(".vaelib-explorer").count() == 1
    root = ".vaelib-explorer"
    pad, shown = (
        page.locator(f"{root} canvas.{c}").bounding_box()
        for c in ("pad", "input")
    )
    # side by side in the theme
    assert pad["y"] == shown["y"] and shown["x"] > pad["x"] + pad["width"]
    if BOOK_PAGES[name] == 2:
        assert max_error_in_browser(page, root, model) <= 1
    errors = check_drawings(page, root, model, page_reference(page, root))
    times = page.evaluate(
        "document.querySelector('.vaelib-explorer').vaelib.state.encodeMs"
    )
    print(
        f"\n{name}: {size / 1e3:.0f} kB; drawing vs PyTorch {errors}; "
        f"last update {times:.2f} ms"
    )
    assert all(e[k] <= TOLERANCES[k] for e in errors for k in TOLERANCES), (
        errors
    )


def test_explorer_refuses_a_conditional_model_clearly():
    model = vaelib.VAE(vaelib.VAEConfig(num_classes=10))
    with pytest.raises(ValueError, match="conditional"):
        export.decoder_layers(model)
    with pytest.raises(ValueError, match="conditional"):
        export.encoder_layers(model)


def test_explorer_refuses_a_decoder_whose_mean_is_not_a_sigmoid():
    model = vaelib.VAE(vaelib.VAEConfig(likelihood="discretized_logistic"))
    with pytest.raises(
        ValueError, match="likelihood is 'discretized_logistic'"
    ):
        export.decoder_layers(model)


def test_drawing_pad_without_anywidget_says_how_to_install_it(monkeypatch):
    # as if not installed
    monkeypatch.setitem(__import__("sys").modules, "anywidget", None)
    with pytest.raises(ImportError, match="pip install anywidget"):
        vaelib.explorer.drawing_pad()


def test_page_script_drops_only_indentation_and_comment_lines():
    source = (vaelib.explorer.STATIC / "explorer.js").read_text()
    # no template literal (the one backtick is in the base-85 alphabet)
    assert source.count("`") == 1 and '_`{]}~"' in source
    script = vaelib.explorer.page_script(source)
    assert len(script) < 0.85 * len(source)
    kept = [x.strip() for x in source.splitlines()]
    kept = [x for x in kept if x and not x.startswith("//")]
    assert script.splitlines() == kept
