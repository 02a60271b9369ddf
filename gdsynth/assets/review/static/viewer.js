/* gdsynth review viewer: several NiiVue canvases with linked crosshairs (world RAS mm),
 * radiological convention, window presets per sequence and overlays. No network: a volume comes
 * from a script next to the page (item.script: base64 NIfTI, works from file://), from an
 * already loaded bundle (window[config.bundle]) or from a URL (item.file). Each file is read
 * (and gunzipped, natively) once; overlays switched off are read only when first switched on.
 * A view gets its base volume and its visible overlays in one NiiVue update (each update redoes
 * every layer on the GPU, in software in headless browsers). Stored values are scaled:
 * value = stored * item.scale + item.offset (windows and thresholds in the config are values).
 * Phases are recorded as performance.measure entries named "gd:<phase> <key>". */
(function () {
  'use strict';
  var SLICE = { axial: 0, coronal: 1, sagittal: 2, multiplanar: 3 };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement('script');
      s.src = src;
      s.onload = function () { resolve(); };
      s.onerror = function () { reject(new Error('could not load ' + src)); };
      document.head.appendChild(s);
    });
  }

  /* Bytes of a base64 string: natively where the browser can (Uint8Array.fromBase64), else
   * through atob. */
  function base64ToBuffer(text) {
    if (Uint8Array.fromBase64) { return Uint8Array.fromBase64(text).buffer; }
    var bin = window.atob(text);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    return bytes.buffer;
  }

  /* Gunzip natively (DecompressionStream) when the bytes are gzip, so NiiVue gets a plain NIfTI
   * and does not inflate it in JavaScript. */
  async function gunzip(buffer) {
    var head = new Uint8Array(buffer, 0, Math.min(2, buffer.byteLength));
    if (head[0] !== 0x1f || head[1] !== 0x8b || typeof DecompressionStream === 'undefined') {
      return buffer;
    }
    var stream = new Blob([buffer]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Response(stream).arrayBuffer();
  }

  /* performance.measure entries (gd:<name>) for the browser benchmark's profile. */
  function measure(name, start) {
    if (performance.measure) { performance.measure('gd:' + name, { start: start, end: performance.now() }); }
  }

  function toStored(item, value) {
    return (value - (item.offset || 0)) / (item.scale || 1);
  }

  function LinkedViewer(root, config) {
    this.root = root;
    this.config = config;
    this.bundleName = config.bundle || null;
    this.bytes = {};       // key -> Promise<ArrayBuffer> (compressed NIfTI, read once)
    this.instances = [];   // one Niivue per volume, in config order
    this.panels = [];      // {vol, nv}
    this.overlays = [];    // {key, nv, index, opacity, item}
    this.pending = {};     // overlay key -> Promise while it loads
    this.thresholds = {};  // overlay key -> current threshold (value units)
    this.onLocation = null;
  }

  /* The NIfTI bytes of an item (gunzipped), read once whatever the number of panels. */
  LinkedViewer.prototype.read = function (item) {
    var self = this;
    if (!this.bytes[item.key]) {
      var t0 = performance.now();
      var bundle = function () { return self.bundleName ? window[self.bundleName] : null; };
      var p;
      if (bundle() && bundle()[item.key]) {
        p = Promise.resolve();
      } else if (item.script) {
        p = loadScript(item.script);
      } else {
        p = fetch(item.file).then(function (r) {
          if (!r.ok) { throw new Error(item.file + ': ' + r.status + ' ' + r.statusText); }
          return r.arrayBuffer();
        });
      }
      this.bytes[item.key] = p.then(function (buffer) {
        if (!buffer) {
          var b = bundle();
          if (!b || !b[item.key]) { throw new Error('volume ' + item.key + ' missing from ' + item.script); }
          buffer = base64ToBuffer(b[item.key]);
          delete b[item.key];  // keep only the decoded bytes
        }
        return gunzip(buffer);
      }).then(function (buffer) { measure('read ' + item.key, t0); return buffer; });
    }
    return this.bytes[item.key];
  };

  LinkedViewer.prototype.image = async function (item, opts) {
    var buffer = await this.read(item);
    var t0 = performance.now();
    var img = await niivue.NVImage.new(buffer.slice(0), item.name.replace(/\.gz$/, ''), opts.colormap,
      opts.opacity, null, opts.cal_min, opts.cal_max, true);
    measure('image ' + item.key, t0);
    return img;
  };

  /* Does overlay ``ov`` belong on panel ``p``? */
  function onPanel(ov, p) {
    return ov.panels.indexOf(p.vol.key) >= 0 || ov.panels.indexOf('all') >= 0;
  }

  LinkedViewer.prototype.imageOptions = function (ov, visible) {
    var thr = this.thresholds[ov.key] !== undefined ? this.thresholds[ov.key] : ov.threshold;
    return { colormap: ov.colormap, opacity: visible ? ov.opacity : 0,
             cal_min: toStored(ov, thr), cal_max: toStored(ov, ov.max) };
  };

  LinkedViewer.prototype.init = async function () {
    var self = this;
    var cfg = this.config;
    var visible = (cfg.overlays || []).filter(function (ov) { return ov.visible; });
    // start reading every volume shown first now, while the views set up their WebGL contexts
    cfg.volumes.concat(visible).forEach(function (item) { self.read(item).catch(function () {}); });
    var made = cfg.volumes.map(function (vol) { return self.makePanel(vol); });
    this.panels = made;
    var loading = Promise.all(made.map(function (p) { return self.fill(p, visible); }));
    visible.forEach(function (ov) { self.pending[ov.key] = loading; });
    await loading;
    this.instances = made.map(function (p) { return p.nv; });
    var all = this.instances;
    all.forEach(function (nv) {
      nv.broadcastTo(all.filter(function (o) { return o !== nv; }), { '2d': true, '3d': true });
    });
    this.setSliceType(cfg.sliceType || 'axial');
    return this;
  };

  LinkedViewer.prototype.makePanel = function (vol) {
    var self = this;
    var panel = el('div', { 'class': 'panel', 'data-key': vol.key });
    var head = el('div', { 'class': 'panel-head' });
    head.appendChild(el('span', { 'class': 'panel-title' }, vol.label));
    var select = el('select', { 'class': 'preset', 'aria-label': 'window preset' });
    Object.keys(vol.presets).forEach(function (name) {
      select.appendChild(el('option', { value: name }, name));
    });
    head.appendChild(select);
    panel.appendChild(head);
    var canvas = el('canvas', { 'class': 'nv-canvas' });
    var holder = el('div', { 'class': 'canvas-holder' });
    holder.appendChild(canvas);
    panel.appendChild(holder);
    this.root.appendChild(panel);
    var nv = new niivue.Niivue({
      isRadiologicalConvention: true,
      backColor: [0, 0, 0, 1],
      crosshairColor: [1, 0.25, 0.25, 0.7],
      crosshairWidth: 1,
      isColorbar: false,
      logLevel: 'error',
      loadingText: 'loading ' + vol.label,
    });
    select.addEventListener('change', function () { self.setWindow(nv, vol, vol.presets[select.value]); });
    nv.onLocationChange = function (data) {
      if (self.onLocation) { self.onLocation(data, vol.key); }
    };
    return { vol: vol, nv: nv, canvas: canvas };
  };

  /* A panel's base volume and its visible overlays, handed to NiiVue together: NiiVue redoes
   * every layer of a view (on the GPU) for each volume added, so adding them one by one would
   * redo the base image once per overlay. */
  LinkedViewer.prototype.fill = async function (panel, overlays) {
    var self = this;
    var vol = panel.vol;
    var t0 = performance.now();
    await panel.nv.attachToCanvas(panel.canvas);
    measure('attach ' + vol.key, t0);
    var win = vol.presets['default'];
    var mine = overlays.filter(function (ov) { return onPanel(ov, panel); });
    var images = await Promise.all([this.image(vol, {
      colormap: 'gray', opacity: 1, cal_min: toStored(vol, win[0]), cal_max: toStored(vol, win[1]),
    })].concat(mine.map(function (ov) { return self.image(ov, self.imageOptions(ov, true)); })));
    t0 = performance.now();
    panel.nv.volumes = images;
    panel.nv.setVolume(images[0], 0);  // back + overlays, one GPU update
    measure('layers ' + vol.key, t0);
    mine.forEach(function (ov, i) {
      self.overlays.push({ key: ov.key, nv: panel.nv, index: i + 1, opacity: ov.opacity, item: ov });
    });
  };

  /* Load an overlay into every panel it belongs to (once; later calls wait for the first). */
  LinkedViewer.prototype.loadOverlay = function (ov, visible) {
    var self = this;
    if (!this.pending[ov.key]) {
      this.pending[ov.key] = (async function () {
        var mine = self.panels.filter(function (p) { return onPanel(ov, p); });
        var images = await Promise.all(mine.map(function () {
          return self.image(ov, self.imageOptions(ov, visible));
        }));
        mine.forEach(function (p, i) {
          p.nv.addVolume(images[i]);
          self.overlays.push({ key: ov.key, nv: p.nv, index: p.nv.volumes.length - 1,
                               opacity: ov.opacity, item: ov });
        });
      })();
    }
    return this.pending[ov.key];
  };

  LinkedViewer.prototype.setWindow = function (nv, vol, range) {
    nv.volumes[0].cal_min = toStored(vol, range[0]);
    nv.volumes[0].cal_max = toStored(vol, range[1]);
    nv.updateGLVolume();
  };

  LinkedViewer.prototype.setSliceType = function (name) {
    var t = SLICE[name] === undefined ? 0 : SLICE[name];
    this.instances.forEach(function (nv) { nv.setSliceType(t); });
  };

  /* Threshold of an overlay in value units (the slider's). */
  LinkedViewer.prototype.setThreshold = function (key, value) {
    this.thresholds[key] = value;
    this.overlays.forEach(function (o) {
      if (o.key !== key) { return; }
      o.nv.volumes[o.index].cal_min = toStored(o.item, value);
      o.nv.updateGLVolume();
    });
  };

  /* The threshold an overlay is drawn at, in value units (null when not loaded). */
  LinkedViewer.prototype.threshold = function (key) {
    var o = this.overlays.find(function (x) { return x.key === key; });
    return o ? o.nv.volumes[o.index].cal_min * (o.item.scale || 1) + (o.item.offset || 0) : null;
  };

  LinkedViewer.prototype.setOverlayVisible = async function (key, visible) {
    var ov = (this.config.overlays || []).find(function (x) { return x.key === key; });
    if (ov && visible && !this.pending[key]) { await this.loadOverlay(ov, true); return; }
    if (this.pending[key]) { await this.pending[key]; }
    this.overlays.forEach(function (o) {
      if (o.key === key) { o.nv.setOpacity(o.index, visible ? o.opacity : 0); }
    });
  };

  /* Centre every view on a world position (RAS mm, the NIfTI/NiiVue convention). */
  LinkedViewer.prototype.goto = function (mm) {
    this.instances.forEach(function (nv) {
      nv.scene.crosshairPos = nv.mm2frac([mm[0], mm[1], mm[2]]);
      nv.drawScene();
    });
    if (this.instances.length) { this.instances[0].createOnLocationChange(); }
  };

  /* Crosshair position of the first view in world RAS mm. */
  LinkedViewer.prototype.crosshairMM = function () {
    var nv = this.instances[0];
    var mm = nv.frac2mm(nv.scene.crosshairPos);
    return [mm[0], mm[1], mm[2]];
  };

  window.GdViewer = {
    create: async function (root, config) {
      var viewer = new LinkedViewer(root, config);
      await viewer.init();
      return viewer;
    },
  };
})();
