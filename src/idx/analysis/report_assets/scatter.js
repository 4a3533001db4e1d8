// Canvas scatter for the 2-D map: one path per colour (not one DOM node per point), a uniform
// grid for hover lookups, wheel zoom around the cursor, drag to pan, double-click to reset.
// Stays interactive at 50k points.

class Scatter {
  constructor(canvas, xs, ys, onHover) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.xs = Float32Array.from(xs);
    this.ys = Float32Array.from(ys);
    this.n = this.xs.length;
    this.onHover = onHover;
    this.categories = new Int32Array(this.n).fill(-1);
    this.hovered = -1;
    this.focus = null;
    this.drawn = 0;
    this.radius = this.n > 20000 ? 1.6 : this.n > 3000 ? 2.4 : this.n > 300 ? 3.5 : 5;
    this._bounds();
    this._grid();
    this.reset();
    this._listen();
  }

  _bounds() {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < this.n; i++) {
      const x = this.xs[i], y = this.ys[i];
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    if (!this.n) { x0 = y0 = -1; x1 = y1 = 1; }
    const dx = Math.max(x1 - x0, 1e-9), dy = Math.max(y1 - y0, 1e-9);
    this.b = {x0, x1, y0, y1, dx, dy};
  }

  _grid() {
    const cells = Math.max(8, Math.min(256, Math.round(Math.sqrt(this.n / 4))));
    this.cells = cells;
    const count = new Int32Array(cells * cells + 1);
    const cellOf = new Int32Array(this.n);
    for (let i = 0; i < this.n; i++) {
      const c = this._cell(this.xs[i], this.ys[i]);
      cellOf[i] = c;
      count[c + 1]++;
    }
    for (let c = 0; c < cells * cells; c++) count[c + 1] += count[c];
    const fillAt = count.slice(0, cells * cells);
    this.start = count;
    this.members = new Int32Array(this.n);
    for (let i = 0; i < this.n; i++) this.members[fillAt[cellOf[i]]++] = i;
  }

  _cell(x, y) {
    const g = this.cells;
    const cx = Math.min(g - 1, Math.max(0, Math.floor((x - this.b.x0) / this.b.dx * g)));
    const cy = Math.min(g - 1, Math.max(0, Math.floor((y - this.b.y0) / this.b.dy * g)));
    return cy * g + cx;
  }

  setColours(categories) {
    this.categories = Int32Array.from(categories);
    this.focus = null;
    // Draw order: points grouped by colour, so each colour is one fill call; the greys (negative
    // categories) first, beneath the colours.
    const order = Array.from({length: this.n}, (_, i) => i);
    order.sort((a, b) => this.categories[a] - this.categories[b]);
    this.order = Int32Array.from(order);
    this.draw();
  }

  reset() {
    this.view = {cx: this.b.x0 + this.b.dx / 2, cy: this.b.y0 + this.b.dy / 2, zoom: 1};
    this.draw();
  }

  _size() {
    const rect = this.canvas.getBoundingClientRect();
    return {w: Math.max(1, rect.width), h: Math.max(1, rect.height)};
  }

  _scale() {
    const {w, h} = this._size();
    const m = 2 * this.radius + 12;
    return Math.min((w - m) / this.b.dx, (h - m) / this.b.dy) * this.view.zoom;
  }

  toScreen(i) {
    const {w, h} = this._size();
    const k = this._scale();
    return [w / 2 + (this.xs[i] - this.view.cx) * k, h / 2 - (this.ys[i] - this.view.cy) * k];
  }

  toData(px, py) {
    const {w, h} = this._size();
    const k = this._scale();
    return [this.view.cx + (px - w / 2) / k, this.view.cy - (py - h / 2) / k];
  }

  draw() {
    const {w, h} = this._size();
    const dpr = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
    }
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const k = this._scale(), r = this.radius, cx = this.view.cx, cy = this.view.cy;
    const order = this.order || Int32Array.from({length: this.n}, (_, i) => i);
    const round = this.n <= 5000;
    let drawn = 0;
    ctx.globalAlpha = this.n > 20000 ? 0.7 : 0.85;
    // With a focused category (legend click) the others are drawn first, in grey, beneath it.
    for (const pass of this.focus === null ? [null] : ["others", "focus"]) {
      let i = 0;
      while (i < this.n) {
        const cat = this.categories[order[i]];
        const mine = cat === this.focus;
        const skip = (pass === "others" && mine) || (pass === "focus" && !mine);
        ctx.fillStyle = pass === "others" ? UNLABELLED_COLOUR : colourOf(cat);
        ctx.beginPath();
        for (; i < this.n && this.categories[order[i]] === cat; i++) {
          if (skip) continue;
          const p = order[i];
          const px = w / 2 + (this.xs[p] - cx) * k, py = h / 2 - (this.ys[p] - cy) * k;
          if (px < -r || py < -r || px > w + r || py > h + r) continue;
          if (round) { ctx.moveTo(px + r, py); ctx.arc(px, py, r, 0, 2 * Math.PI); }
          else ctx.rect(px - r, py - r, 2 * r, 2 * r);
          drawn++;
        }
        ctx.fill();
      }
    }
    ctx.globalAlpha = 1;
    if (this.hovered >= 0) {
      const [px, py] = this.toScreen(this.hovered);
      ctx.strokeStyle = "#111"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(px, py, r + 3, 0, 2 * Math.PI); ctx.stroke();
    }
    this.drawn = drawn;
    this.canvas.dataset.drawn = String(drawn);
  }

  // Nearest point within a few pixels of the cursor, via the grid cells the radius touches.
  nearest(px, py) {
    const k = this._scale();
    const reach = (this.radius + 4) / k;
    const [x, y] = this.toData(px, py);
    const g = this.cells;
    const gx0 = Math.floor((x - reach - this.b.x0) / this.b.dx * g), gx1 = Math.floor((x + reach - this.b.x0) / this.b.dx * g);
    const gy0 = Math.floor((y - reach - this.b.y0) / this.b.dy * g), gy1 = Math.floor((y + reach - this.b.y0) / this.b.dy * g);
    let best = -1, bestD = reach * reach;
    for (let gy = Math.max(0, gy0); gy <= Math.min(g - 1, gy1); gy++) {
      for (let gx = Math.max(0, gx0); gx <= Math.min(g - 1, gx1); gx++) {
        const c = gy * g + gx;
        for (let m = this.start[c]; m < this.start[c + 1]; m++) {
          const i = this.members[m];
          const d = (this.xs[i] - x) ** 2 + (this.ys[i] - y) ** 2;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  _listen() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const rect = c.getBoundingClientRect();
      const px = ev.clientX - rect.left, py = ev.clientY - rect.top;
      const [x, y] = this.toData(px, py);
      const factor = Math.exp(-ev.deltaY * 0.0015);
      this.view.zoom = Math.min(500, Math.max(0.5, this.view.zoom * factor));
      const [x2, y2] = this.toData(px, py);  // keep the point under the cursor still
      this.view.cx += x - x2; this.view.cy += y - y2;
      this.draw();
    }, {passive: false});
    c.addEventListener("mousedown", (ev) => {
      drag = {x: ev.clientX, y: ev.clientY, cx: this.view.cx, cy: this.view.cy};
      c.classList.add("dragging");
    });
    window.addEventListener("mouseup", () => { drag = null; c.classList.remove("dragging"); });
    c.addEventListener("mousemove", (ev) => {
      if (drag) {
        const k = this._scale();
        this.view.cx = drag.cx - (ev.clientX - drag.x) / k;
        this.view.cy = drag.cy + (ev.clientY - drag.y) / k;
        this.draw();
        return;
      }
      const rect = c.getBoundingClientRect();
      const i = this.nearest(ev.clientX - rect.left, ev.clientY - rect.top);
      if (i !== this.hovered) { this.hovered = i; this.draw(); }
      this.onHover(i, ev.clientX, ev.clientY);
    });
    c.addEventListener("mouseleave", () => { this.hovered = -1; this.draw(); this.onHover(-1); });
    c.addEventListener("dblclick", () => this.reset());
    window.addEventListener("resize", () => this.draw());
  }
}
