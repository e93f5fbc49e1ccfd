// The drawing pad as an anywidget module (vaelib.explorer.drawing_pad):
// explorer.js's pad, sending the canvas' 8-bit alpha to Python.
export default {
  render({ model, el }) {
    const size = model.get("size");
    el.innerHTML = '<div class="vaelib-explorer"><canvas class="pad" ' +
      'width="' + size + '" height="' + size + '"></canvas><div>' +
      '<button class="undo">undo</button> ' +
      '<button class="clear">clear</button></div></div>';
    const pad = VAELIB.pad(el.querySelector("canvas.pad"), (ink, settled) => {
      if (!settled) return; // send when a stroke ends, not every frame
      const bytes = Uint8Array.from(ink, (v) => Math.round(v * 255));
      model.set("ink", new DataView(bytes.buffer));
      model.save_changes();
    });
    el.querySelector("button.undo").addEventListener("click", pad.undo);
    el.querySelector("button.clear").addEventListener("click", pad.clear);
  },
};
