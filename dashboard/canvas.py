"""A drawing pad: a small inline Streamlit component (st.components.v2) with no package behind it.

White ink on black, as MNIST digits are; each finished stroke sends the drawing to Python as a PNG
data URL (state `image`), so the prediction follows the pen. "Clear" empties it (state None).
"""

from __future__ import annotations

import base64

import streamlit as st

_HTML = """
<div class="pad">
  <canvas width="280" height="280" aria-label="drawing pad"></canvas>
  <button type="button">Clear</button>
</div>
"""

_CSS = """
.pad { display: flex; flex-direction: column; gap: 0.4rem; align-items: flex-start; }
canvas { background: #000; border-radius: 0.5rem; touch-action: none; cursor: crosshair; }
button { font: inherit; padding: 0.25rem 0.9rem; border-radius: 0.5rem; border: 1px solid #bbb;
         background: transparent; color: inherit; cursor: pointer; }
"""

_JS = """
export default function (component) {
  const { parentElement, setStateValue, data } = component;
  const canvas = parentElement.querySelector("canvas");
  const clear = parentElement.querySelector("button");
  const pen = canvas.getContext("2d");
  const width = (data && data.stroke) || 18;
  let drawing = false;
  const reset = () => { pen.fillStyle = "#000"; pen.fillRect(0, 0, canvas.width, canvas.height); };
  if (!canvas.dataset.ready) { reset(); canvas.dataset.ready = "1"; }
  const at = (e) => { const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height]; };
  canvas.onpointerdown = (e) => { drawing = true; canvas.setPointerCapture(e.pointerId);
    const [x, y] = at(e); pen.beginPath(); pen.moveTo(x, y); pen.lineTo(x + 0.1, y + 0.1);
    pen.strokeStyle = "#fff"; pen.lineWidth = width; pen.lineCap = "round"; pen.lineJoin = "round"; pen.stroke(); };
  canvas.onpointermove = (e) => { if (!drawing) return; const [x, y] = at(e); pen.lineTo(x, y); pen.stroke(); };
  canvas.onpointerup = () => { if (!drawing) return; drawing = false; setStateValue("image", canvas.toDataURL("image/png")); };
  clear.onclick = () => { reset(); setStateValue("image", null); };
}
"""

_pad = st.components.v2.component("modeldeck_drawing_pad", html=_HTML, css=_CSS, js=_JS)


def drawing_pad(key: str, stroke: int = 18) -> bytes | None:
    """The drawing as PNG bytes (None while empty)."""
    result = _pad(key=key, data={"stroke": stroke}, default={"image": None}, on_image_change=lambda: None)
    url = getattr(result, "image", None)
    if not url or not isinstance(url, str) or "," not in url:
        return None
    return base64.b64decode(url.split(",", 1)[1])
