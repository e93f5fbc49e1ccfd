"""Latent-space explorers: ipywidgets sliders in a live kernel, and a kernel-free HTML + JS copy.

The kernel-free explorer embeds the decoder's weights (batch norm folded into the linear layers)
in one HTML snippet and decodes in the browser with a few lines of JavaScript, so its sliders work
on a static web page. `decoder_layers` is the single description of the decoder both use.
"""

from __future__ import annotations

import base64
import io
import json
import uuid

import numpy as np
import torch
from torch import nn

from .latent import latent_means
from .model import ACTIVATIONS, VAE

LIMIT = 3.0  # sliders span -LIMIT..LIMIT prior standard deviations
_ACTIVATION_NAMES = {cls: name for name, cls in ACTIVATIONS.items()}


def decoder_layers(model: VAE) -> list[dict]:
    """The eval-mode decoder as [{W (out, in), b (out,), act}], batch norm folded in, dropout dropped."""
    if model.config.num_classes:
        raise ValueError("The explorers show unconditional decoders; this VAE is conditional "
                         f"(num_classes={model.config.num_classes}). Decode it with model.decode(z, labels).")
    if model.config.likelihood != "bernoulli":
        raise ValueError("The explorers draw a Bernoulli decoder's mean, sigmoid(logits); this VAE's likelihood is "
                         f"{model.config.likelihood!r}, whose mean image needs more than a sigmoid. Show it with "
                         "model.decode(z) in a kernel.")
    layers: list[dict] = []
    for module in [*model.decoder, model.to_logits]:
        if isinstance(module, nn.Linear):
            layers.append({"W": module.weight.detach().double().cpu(), "b": module.bias.detach().double().cpu(), "act": "linear"})
        elif isinstance(module, nn.BatchNorm1d):  # y = gamma * (Wx + b - mean) / sqrt(var + eps) + beta
            scale = module.weight.detach().double().cpu() / torch.sqrt(module.running_var.double().cpu() + module.eps)
            last = layers[-1]
            last["W"] = last["W"] * scale[:, None]
            last["b"] = (last["b"] - module.running_mean.double().cpu()) * scale + module.bias.detach().double().cpu()
        elif type(module) in _ACTIVATION_NAMES:
            layers[-1]["act"] = _ACTIVATION_NAMES[type(module)]
        elif not isinstance(module, nn.Dropout):
            raise TypeError(f"decoder_layers cannot export a {type(module).__name__} layer")
    layers[-1]["act"] = "sigmoid"
    return layers


def quantize_rows(W: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """W (out, in) -> int16 codes and one float32 scale per row, W ~ codes * scale[:, None]."""
    scale = (W.abs().amax(dim=1) / 32767).clamp_min(1e-30).float()
    codes = torch.round(W / scale.double()[:, None]).clamp(-32767, 32767).to(torch.int16)
    return codes.numpy(), scale.numpy()


def decode_layers(layers: list[dict], z: torch.Tensor, quantized: bool = False) -> torch.Tensor:
    """Run exported layers on codes z (B, L) -> pixel means (B, D); quantized=True mirrors the JavaScript."""
    functions = {**{name: cls() for name, cls in ACTIVATIONS.items()}, "sigmoid": torch.sigmoid, "linear": lambda v: v}
    x = z.double()
    for layer in layers:
        if quantized:
            codes, scale = quantize_rows(layer["W"])
            pre = (x @ torch.from_numpy(codes).double().T) * torch.from_numpy(scale).double() + layer["b"].float().double()
        else:
            pre = x @ layer["W"].T + layer["b"]
        x = functions[layer["act"]](pre)
    return x


def to_ink(pixels: torch.Tensor) -> np.ndarray:
    """Pixel means in [0, 1] -> uint8 grey levels, ink dark on white (as in the book's plots)."""
    return (255 - torch.round(pixels.detach().double().cpu() * 255)).clamp(0, 255).to(torch.uint8).numpy()


def png_bytes(array: np.ndarray, scale: int = 1) -> bytes:
    """PNG encoding of a uint8 (H, W) or (H, W, 3) array, enlarged `scale` times without smoothing."""
    from PIL import Image

    image = Image.fromarray(array)
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def scatter_backdrop(model: VAE, images: torch.Tensor, labels: torch.Tensor, size: int = 300,
                     limit: float = LIMIT) -> np.ndarray:
    """RGB (size, size, 3) picture of the 2-D codes of `images`, coloured by label, spanning +-limit."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # off-screen, whatever the backend
    from matplotlib.figure import Figure

    z = latent_means(model, images)
    fig = Figure(figsize=(size / 100, size / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.scatter(z[:, 0], z[:, 1], c=labels.cpu(), cmap="tab10", s=1.5, alpha=0.5, vmin=-0.5, vmax=9.5)
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.axis("off")
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def _pixel_of(z: torch.Tensor, size: int, limit: float) -> tuple[int, int]:
    """Row and column of code z (2,) on a square backdrop spanning +-limit."""
    col = (float(z[0]) + limit) / (2 * limit) * (size - 1)
    row = (limit - float(z[1])) / (2 * limit) * (size - 1)
    return int(round(min(max(row, 0), size - 1))), int(round(min(max(col, 0), size - 1)))


class LatentExplorer:
    """Sliders over z with the decoded digit updating live (ipywidgets, needs a running kernel)."""

    def __init__(self, model: VAE, images: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                 limit: float = LIMIT, step: float = 0.05, scale: int = 7):
        import ipywidgets as widgets

        self.model, self.limit, self.scale = model.eval(), limit, scale
        self._holding = False  # True while set_z moves several sliders: render once, at the end
        self.device = next(model.parameters()).device
        latent_dim = model.config.latent_dim
        self.sliders = [widgets.FloatSlider(value=0.0, min=-limit, max=limit, step=step, description=f"z{d + 1}",
                                            continuous_update=True, readout_format=".2f") for d in range(latent_dim)]
        self.image = widgets.Image(format="png")
        controls = list(self.sliders)
        self.starts = {}
        if images is not None and labels is not None:
            for digit in sorted(set(labels.tolist())):
                self.starts[f"test digit {digit}"] = images[int((labels == digit).nonzero()[0])]
            self.start = widgets.Dropdown(options=["z = 0 (prior mean)", *self.starts], description="start")
            self.start.observe(self._on_start, names="value")
            controls.insert(0, self.start)
        self.map = None
        if latent_dim == 2 and images is not None and labels is not None:
            self.backdrop = scatter_backdrop(model, images, labels, limit=limit)
            self.map = widgets.Image(format="png")
        for slider in self.sliders:
            slider.observe(self._render, names="value")
        views = [widgets.VBox(controls), self.image] + ([self.map] if self.map is not None else [])
        self.widget = widgets.HBox(views)
        self._render()

    @property
    def z(self) -> torch.Tensor:
        """The code the sliders show: (L,)."""
        return torch.tensor([s.value for s in self.sliders])

    def set_z(self, z) -> None:
        """Move every slider at once and render once (values outside the range are clipped)."""
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
            picture[max(row - 3, 0):row + 4, max(col - 3, 0):col + 4] = (0, 0, 0)
            picture[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2] = (255, 255, 255)
            self.map.value = png_bytes(picture)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def explorer_html(model: VAE, images: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                  limit: float = LIMIT, step: float = 0.01, scale: int = 7) -> str:
    """A self-contained HTML + JavaScript explorer of the decoder: no kernel, no network, no CDN.

    Weights travel as base64 int16 with a float32 scale per row (about a third of a float32 copy's
    size, far below the 1/255 display resolution in error); biases as float32. For a 2-D model the
    test codes' scatter is a clickable map.
    """
    layers = decoder_layers(model.eval())
    parts = [quantize_rows(l["W"]) for l in layers]
    weights = np.concatenate([codes.ravel() for codes, _ in parts]).astype("<i2")
    floats = np.concatenate([np.concatenate([scale, l["b"].float().numpy()]) for (_, scale), l in zip(parts, layers)]).astype("<f4")
    meta = {"layers": [{"out": int(l["W"].shape[0]), "in": int(l["W"].shape[1]), "act": l["act"]} for l in layers],
            "latent": model.config.latent_dim, "height": int(model.config.input_shape[-2]),
            "width": int(model.config.input_shape[-1]), "limit": limit}
    uid = "vaelib-explorer-" + uuid.uuid4().hex[:8]
    sliders = "\n".join(
        f'<label>z<sub>{d + 1}</sub> <input type="range" min="{-limit}" max="{limit}" step="{step}" value="0" data-dim="{d}">'
        f' <output>0.00</output></label>' for d in range(model.config.latent_dim))
    backdrop = ""
    if model.config.latent_dim == 2 and images is not None and labels is not None:
        encoded = base64.b64encode(png_bytes(scatter_backdrop(model, images, labels, limit=limit))).decode()
        from matplotlib import colormaps
        from matplotlib.colors import to_hex

        key = "".join(f'<span style="color:{to_hex(colormaps["tab10"](d))}">&#9679;{d}</span> ' for d in range(10))
        backdrop = (f'<div><div class="map" title="click to set z"><img alt="2-D codes of test digits, coloured by '
                    f'label" src="data:image/png;base64,{encoded}"><div class="marker"></div></div>'
                    f'<div class="key">{key}</div></div>')
    side = scale * meta["width"]
    return _TEMPLATE.format(uid=uid, sliders=sliders, backdrop=backdrop, side=side, height=meta["height"],
                            width=meta["width"], meta=json.dumps(meta),
                            weights=base64.b64encode(weights.tobytes()).decode(),
                            floats=base64.b64encode(floats.tobytes()).decode())


_TEMPLATE = """<div id="{uid}" class="vaelib-explorer">
<style>
#{uid} {{ display: flex; flex-wrap: wrap; gap: 1.2em; align-items: flex-start; font: 14px sans-serif; }}
#{uid} .sliders {{ display: flex; flex-direction: column; gap: 0.3em; }}
#{uid} .sliders label {{ display: flex; align-items: center; gap: 0.5em; }}
#{uid} canvas {{ width: {side}px; height: {side}px; image-rendering: pixelated; border: 1px solid #ccc; }}
#{uid} .map {{ position: relative; width: 300px; height: 300px; cursor: crosshair; border: 1px solid #ccc; }}
#{uid} .map img {{ width: 300px; height: 300px; display: block; }}
#{uid} .key {{ width: 300px; margin-top: 0.3em; font-size: 13px; }}
#{uid} .marker {{ position: absolute; width: 10px; height: 10px; margin: -6px 0 0 -6px; border: 2px solid #000;
  border-radius: 50%; background: #fff; pointer-events: none; }}
</style>
<div class="sliders">
{sliders}
</div>
<canvas width="{width}" height="{height}"></canvas>
{backdrop}
<script>
(function () {{
  var root = document.getElementById("{uid}");
  var meta = {meta};
  function bufferOf(text) {{
    var bytes = atob(text), buffer = new ArrayBuffer(bytes.length), view = new Uint8Array(buffer);
    for (var i = 0; i < bytes.length; i++) view[i] = bytes.charCodeAt(i);
    return buffer;
  }}
  var codes = new Int16Array(bufferOf("{weights}")), floats = new Float32Array(bufferOf("{floats}"));
  var wOffset = 0, fOffset = 0, layers = [];
  meta.layers.forEach(function (l) {{
    var W = codes.subarray(wOffset, wOffset + l.out * l.in); wOffset += l.out * l.in;
    var scale = floats.subarray(fOffset, fOffset + l.out); fOffset += l.out;
    var b = floats.subarray(fOffset, fOffset + l.out); fOffset += l.out;
    layers.push({{W: W, scale: scale, b: b, n: l.in, m: l.out, act: l.act}});
  }});
  var act = {{
    relu: function (v) {{ return v > 0 ? v : 0; }},
    elu: function (v) {{ return v > 0 ? v : Math.exp(v) - 1; }},
    silu: function (v) {{ return v / (1 + Math.exp(-v)); }},
    sigmoid: function (v) {{ return 1 / (1 + Math.exp(-v)); }},
    linear: function (v) {{ return v; }}
  }};
  function decode(z) {{
    var x = z;
    layers.forEach(function (l) {{
      var y = new Float64Array(l.m), f = act[l.act];
      for (var o = 0; o < l.m; o++) {{
        var s = 0, row = o * l.n;
        for (var k = 0; k < l.n; k++) s += l.W[row + k] * x[k];
        y[o] = f(s * l.scale[o] + l.b[o]);
      }}
      x = y;
    }});
    return x;
  }}
  var inputs = Array.prototype.slice.call(root.querySelectorAll("input[type=range]"));
  var canvas = root.querySelector("canvas"), ctx = canvas.getContext("2d");
  var image = ctx.createImageData(meta.width, meta.height);
  var map = root.querySelector(".map"), marker = root.querySelector(".marker");
  function render() {{
    var z = inputs.map(function (el) {{ return parseFloat(el.value); }});
    var t0 = performance.now();
    var p = decode(z);
    var t1 = performance.now();
    for (var k = 0; k < p.length; k++) {{
      var ink = 255 - Math.round(p[k] * 255);
      image.data[4 * k] = image.data[4 * k + 1] = image.data[4 * k + 2] = ink;
      image.data[4 * k + 3] = 255;
    }}
    ctx.putImageData(image, 0, 0);
    inputs.forEach(function (el) {{ el.nextElementSibling.value = parseFloat(el.value).toFixed(2); }});
    if (marker) {{
      marker.style.left = ((z[0] + meta.limit) / (2 * meta.limit) * 100) + "%";
      marker.style.top = ((meta.limit - z[1]) / (2 * meta.limit) * 100) + "%";
    }}
    root.dataset.decodeMs = (t1 - t0).toFixed(3);
    root.dataset.renders = String(Number(root.dataset.renders || 0) + 1);
  }}
  inputs.forEach(function (el) {{ el.addEventListener("input", render); }});
  if (map) map.addEventListener("click", function (e) {{
    var r = map.getBoundingClientRect();
    inputs[0].value = ((e.clientX - r.left) / r.width * 2 - 1) * meta.limit;
    inputs[1].value = (1 - (e.clientY - r.top) / r.height * 2) * meta.limit;
    render();
  }});
  render();
}})();
</script>
</div>
"""
