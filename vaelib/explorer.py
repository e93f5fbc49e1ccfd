"""Latent-space explorers: ipywidgets sliders, and a kernel-free HTML copy.

The sliders need a live kernel. The kernel-free explorer embeds the
networks (`vaelib.export`) in one HTML snippet whose JavaScript
(`static/explorer.js`, styled by `static/explorer.css`) decodes in the
browser, so its sliders work on a static web page. With `drawing=True` it
also carries the encoder: draw a digit and see its posterior, its
reconstruction, a few draws, and how typical it is.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import numpy as np
import torch

from . import export
from .drawing import BOX, SIZE, mnist_style
from .latent import latent_means
from .model import VAE

STATIC = Path(__file__).with_name("static")
LIMIT = 3.0  # sliders span -LIMIT..LIMIT prior standard deviations
PAD = 280  # side of the drawing canvas, in canvas pixels
MAP_POINTS = 5000  # test codes drawn on the 2-D map


def to_ink(pixels: torch.Tensor) -> np.ndarray:
    """Pixel means in [0, 1] -> uint8 grey levels, ink dark on white.

    The book's plots show digits the same way.
    """
    return (
        (255 - torch.round(pixels.detach().double().cpu() * 255))
        .clamp(0, 255)
        .to(torch.uint8)
        .numpy()
    )


def png_bytes(array: np.ndarray, scale: int = 1) -> bytes:
    """PNG encoding of a uint8 (H, W) or (H, W, 3) array.

    It is enlarged `scale` times without smoothing.
    """
    from PIL import Image

    image = Image.fromarray(array)
    if scale != 1:
        image = image.resize(
            (image.width * scale, image.height * scale), Image.NEAREST
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def scatter_backdrop(
    model: VAE,
    images: torch.Tensor,
    labels: torch.Tensor,
    size: int = 300,
    limit: float = LIMIT,
) -> np.ndarray:
    """RGB (size, size, 3) picture of the 2-D codes of `images`.

    The codes are coloured by label, and the picture spans +-limit.
    """
    # off-screen, whatever the backend
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    z = latent_means(model, images)
    fig = Figure(figsize=(size / 100, size / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.scatter(
        z[:, 0],
        z[:, 1],
        c=labels.cpu(),
        cmap="tab10",
        s=1.5,
        alpha=0.5,
        vmin=-0.5,
        vmax=9.5,
    )
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.axis("off")
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def _pixel_of(z: torch.Tensor, size: int, limit: float) -> tuple[int, int]:
    """Row and column of code z (2,) on a square backdrop spanning +-limit."""
    col = (float(z[0]) + limit) / (2 * limit) * (size - 1)
    row = (limit - float(z[1])) / (2 * limit) * (size - 1)
    return (
        int(round(min(max(row, 0), size - 1))),
        int(round(min(max(col, 0), size - 1))),
    )


class LatentExplorer:
    """Sliders over z with the decoded digit updating live.

    Built with ipywidgets; it needs a running kernel. With drawing=True a
    drawing pad (`drawing_pad`, anywidget) comes too: each finished stroke
    is made MNIST-style (`vaelib.drawing.mnist_style`), shown, and the
    sliders jump to its code.
    """

    def __init__(
        self,
        model: VAE,
        images: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        limit: float = LIMIT,
        step: float = 0.05,
        scale: int = 7,
        drawing: bool = False,
    ):
        import ipywidgets as widgets

        self.model, self.limit, self.scale = model.eval(), limit, scale
        # True while set_z moves several sliders: render once, at the end
        self._holding = False
        self.device = next(model.parameters()).device
        latent_dim = model.config.latent_dim
        self.sliders = [
            widgets.FloatSlider(
                value=0.0,
                min=-limit,
                max=limit,
                step=step,
                description=f"z{d + 1}",
                continuous_update=True,
                readout_format=".2f",
            )
            for d in range(latent_dim)
        ]
        self.image = widgets.Image(format="png")
        controls = list(self.sliders)
        self.starts = {}
        if images is not None and labels is not None:
            for digit in sorted(set(labels.tolist())):
                self.starts[f"test digit {digit}"] = images[
                    int((labels == digit).nonzero()[0])
                ]
            self.start = widgets.Dropdown(
                options=["z = 0 (prior mean)", *self.starts],
                description="start",
            )
            self.start.observe(self._on_start, names="value")
            controls.insert(0, self.start)
        self.map = None
        if latent_dim == 2 and images is not None and labels is not None:
            self.backdrop = scatter_backdrop(
                model, images, labels, limit=limit
            )
            self.map = widgets.Image(format="png")
        for slider in self.sliders:
            slider.observe(self._render, names="value")
        views = [widgets.VBox(controls), self.image] + (
            [self.map] if self.map is not None else []
        )
        self.widget = widgets.HBox(views)
        self.image.add_class("vaelib-decoded")
        self.pad = None
        # "start from my drawing": a pad whose ink moves the sliders to
        # its code
        if drawing:
            self.pad = drawing_pad()
            self.input = widgets.Image(format="png")
            self.pad.observe(self._on_drawing, names="ink")
            self.widget = widgets.VBox(
                [widgets.HBox([self.pad, self.input]), self.widget]
            )
        self.widget.add_class("vaelib-kernel-explorer")
        self._render()

    def _on_drawing(self, _change=None) -> None:
        """Encode the pad's drawing, MNIST-style; start the sliders there."""
        x = torch.tensor(self.pad.mnist_input(), dtype=torch.float32)
        self.input.value = png_bytes(to_ink(x), self.scale // 2 + 1)
        if x.any():
            device = next(self.model.parameters()).device
            shape = self.model.config.input_shape
            self.set_z(
                latent_means(self.model, x.reshape(1, *shape).to(device))[0]
            )

    @property
    def z(self) -> torch.Tensor:
        """The code the sliders show: (L,)."""
        return torch.tensor([s.value for s in self.sliders])

    def set_z(self, z) -> None:
        """Move every slider at once and render once.

        Values outside the range are clipped.
        """
        self._holding = True
        try:
            for slider, value in zip(self.sliders, z):
                slider.value = float(value)
        finally:
            self._holding = False
        self._render()

    def _on_start(self, change) -> None:
        image = self.starts.get(change["new"])
        if image is None:
            self.set_z(torch.zeros(len(self.sliders)))
        else:
            self.set_z(latent_means(self.model, image[None])[0])

    @torch.no_grad()
    def _render(self, _change=None) -> None:
        if self._holding:
            return
        z = self.z.to(self.device)[None]
        self.pixels = to_ink(self.model.decode(z)[0, 0])
        self.image.value = png_bytes(self.pixels, self.scale)
        if self.map is not None:
            picture = self.backdrop.copy()
            row, col = _pixel_of(self.z, len(picture), self.limit)
            picture[
                max(row - 3, 0) : row + 4,
                max(col - 3, 0) : col + 4,
            ] = (0, 0, 0)
            picture[
                max(row - 1, 0) : row + 2,
                max(col - 1, 0) : col + 2,
            ] = (255, 255, 255)
            self.map.value = png_bytes(picture)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def _pad_module() -> str:
    """The drawing pad as an anywidget ES module.

    It is explorer.js's pad, sending ink to Python.
    """
    return (STATIC / "explorer.js").read_text() + (
        STATIC / "pad_widget.js"
    ).read_text()


def drawing_pad():
    """A drawing pad widget for a kernel (JupyterLab, Notebook, Colab).

    Its `ink` is 8-bit bytes. The pad is the static explorer's
    (`static/explorer.js`) wrapped with anywidget, which Colab does not
    ship: `%pip install anywidget` there.
    """
    try:
        import anywidget
        import traitlets
    except ImportError as error:
        raise ImportError(
            "The drawing pad needs anywidget: pip install anywidget "
            "(in Colab: %pip install anywidget), then run this cell again."
        ) from error

    class DrawingPad(anywidget.AnyWidget):
        """Draw with mouse or touch.

        `ink` holds the canvas' alpha, (size * size) bytes.
        """

        _esm = _pad_module()
        _css = (STATIC / "explorer.css").read_text()
        size = traitlets.Int(PAD).tag(sync=True)
        ink = traitlets.Bytes(b"").tag(sync=True)

        def mnist_input(self) -> np.ndarray:
            """The drawing made MNIST-style: (28, 28) in [0, 1].

            All zeros before any ink.
            """
            if not self.ink:
                return np.zeros((SIZE, SIZE))
            ink = np.frombuffer(self.ink, np.uint8)
            if ink.size != self.size**2:
                raise ValueError(
                    f"the pad sent {ink.size} bytes of ink; expected "
                    f"{self.size}^2 = {self.size**2} (one per canvas pixel)"
                )
            return mnist_style(ink.reshape(self.size, self.size) / 255)

    return DrawingPad()


def map_codes(
    model: VAE, images: torch.Tensor, limit: float = LIMIT
) -> np.ndarray:
    """2-D codes of images as int8, -127..127 spanning +-limit.

    Shapes: (N, 2) -> (2N,).
    """
    z = latent_means(model, images).double() / limit
    return torch.round(z.clamp(-1, 1) * 127).to(torch.int8).numpy().ravel()


def _label_colours() -> list[str]:
    """One colour per digit: tab10, as in the book's scatter plots.

    The same colours as plot_latent_scatter.
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return [to_hex(c) for c in colormaps["tab10"].colors]


def _sliders(dims: list[int], limit: float, step: float) -> str:
    return "\n".join(
        f'<label>z<sub>{d + 1}</sub> <input type="range" '
        f'min="{-limit}" max="{limit}" step="{step}" value="0" '
        f'data-dim="{d}"> <output>0.00</output></label>'
        for d in dims
    )


def explorer_html(
    model: VAE,
    images: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    *,
    drawing: bool = False,
    reference: torch.Tensor | None = None,
    dims=None,
    reference_name: str = "test digits",
    limit: float = LIMIT,
    step: float = 0.01,
) -> str:
    """A self-contained HTML + JS explorer: no kernel, no network, no CDN.

    Sliders set z (all dimensions, or those in `dims`) and the page decodes
    it. For a 2-D model, `images` and `labels` give a clickable map of their
    codes. With drawing=True the encoder comes too: a pad to draw on, the
    posterior, the reconstruction, decoder means at fixed draws z ~ q(z|x),
    and the drawing's -ELBO ranked among `reference` images (e.g. the test
    digits).
    """
    model = model.eval()
    latent = model.config.latent_dim
    dims = list(range(latent)) if dims is None else [int(d) for d in dims]
    if not dims or not all(0 <= d < latent for d in dims):
        raise ValueError(
            f"dims must name latent dimensions 0..{latent - 1}; got {dims}"
        )
    shapes, arrays = export.layer_arrays(
        "decoder", export.decoder_layers(model)
    )
    meta = {
        "decoder": shapes,
        "latent": latent,
        "limit": limit,
        "colours": _label_colours(),
        "width": int(model.config.input_shape[-1]),
        "pad": PAD,
        "box": BOX,
        "referenceName": reference_name,
    }
    if drawing:
        if reference is None:
            raise ValueError(
                "drawing=True ranks a drawing's score among reference images: "
                "pass reference=splits.test.images "
                "(or any (N, C, H, W) batch)."
            )
        meta["encoder"], encoder = export.layer_arrays(
            "encoder", export.encoder_layers(model)
        )
        arrays.update(encoder)
        eps = export.fixed_noise(latent)
        scores = export.fixed_noise_scores(model, reference, eps)
        arrays["eps"] = eps.numpy().ravel()
        arrays["reference"] = export.score_quantiles(scores)
    show_map = latent == 2 and images is not None and labels is not None
    if show_map:
        arrays["map.codes"] = map_codes(model, images[:MAP_POINTS], limit)
        arrays["map.labels"] = (
            labels[:MAP_POINTS].cpu().numpy().astype(np.uint8)
        )
    meta["packed"] = export.pack(arrays)
    uid = "vaelib-explorer-" + uuid.uuid4().hex[:8]
    parts = [
        f'<div id="{uid}" class="vaelib-explorer">',
        f"<style>{(STATIC / 'explorer.css').read_text()}</style>",
    ]
    if drawing:
        parts.append(_DRAWING.format(pad=PAD))
    key = " ".join(
        f'<span style="color:{c}">&#9679;{d}</span>'
        for d, c in enumerate(meta["colours"])
    )
    map_html = _MAP.format(key=key) if show_map else ""
    parts.append(
        _DECODER.format(sliders=_sliders(dims, limit, step), map=map_html)
    )
    if drawing:
        canvases = "".join(
            '<canvas class="draw" width="28" height="28"></canvas>'
            for _ in range(export.DRAWS)
        )
        parts.append(_DRAWS.format(canvases=canvases, k=export.DRAWS))
    data = json.dumps(meta).replace("<", "\\u003c").replace(">", "\\u003e")
    parts.append(
        f'<script type="application/json" class="vaelib-meta">{data}</script>'
    )
    js = page_script((STATIC / "explorer.js").read_text())
    parts.append(
        f"<script>{js}\n" + _START.replace("UID", uid) + "</script>\n</div>\n"
    )
    return "\n".join(parts)


def page_script(source: str) -> str:
    """JavaScript as a page embeds it: no indentation, no comment lines.

    Every page with an explorer carries its script; this makes it ~20 %
    lighter. Line breaks stay, so semicolon insertion is unchanged; it is
    safe because explorer.js has no template literals (whose indentation
    would be text).
    """
    lines = (line.strip() for line in source.splitlines())
    return "\n".join(x for x in lines if x and not x.startswith("//"))


_DRAWING = """<div class="vx-row">
<figure><canvas class="pad" width="{pad}" height="{pad}"></canvas>
<figcaption>Draw a digit here. <button class="undo">undo</button>
<button class="clear">clear</button></figcaption></figure>
<figure><canvas class="input" width="28" height="28"></canvas>
<figcaption>\
What the encoder sees: your ink fitted into 20 &times; 20 and centred
by its centre of mass, as MNIST's digits were.</figcaption></figure>
<p class="result">Draw a digit in the box.</p>
</div>"""

_DECODER = """<div class="vx-row">
<div class="sliders">
{sliders}
</div>
<figure><canvas class="decoded" width="28" height="28"></canvas>
<figcaption>The decoder's mean image at the code z.</figcaption></figure>
{map}
</div>"""

_MAP = """<div><div class="map" title="click to set z">
<canvas class="dots" width="300" height="300"></canvas>
<canvas class="overlay" width="300" height="300"></canvas></div>
<div class="key">{key}</div></div>"""

_DRAWS = """<div class="vx-row"><figure>{canvases}
<figcaption style="max-width: none">The decoder's mean images at {k} draws
z ~ q(z|x) (fixed noise, so the page is repeatable).\
</figcaption></figure></div>"""

_START = """(function () {
  var root = document.getElementById("UID");
  var meta = JSON.parse(root.querySelector("script.vaelib-meta").textContent);
  VAELIB.explorer(root, meta).catch(function (error) {
    root.insertAdjacentHTML("beforeend", "<p>The explorer could not start: " +
      error + ". It needs a browser from 2023 or later \
(DecompressionStream).</p>");
  });
})();
"""
