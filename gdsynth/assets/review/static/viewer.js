/* gdsynth review viewer: several NiiVue canvases with linked crosshairs (world RAS mm),
 * radiological convention, window presets per sequence and overlays. No network: volumes come
 * from a base64 bundle (window[config.bundle]) when present, else from URLs next to the page. */
(function () {
  'use strict';
  var SLICE = { axial: 0, coronal: 1, sagittal: 2, multiplanar: 3 };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function loadImage(item, bundle, extra) {
    var opts = Object.assign({ name: item.name }, extra);
    if (bundle && bundle[item.key]) {
      return niivue.NVImage.loadFromBase64(Object.assign({ base64: bundle[item.key] }, opts));
    }
    return niivue.NVImage.loadFromUrl(Object.assign({ url: item.file }, opts));
  }

  function LinkedViewer(root, config) {
    this.root = root;
    this.config = config;
    this.bundle = config.bundle ? window[config.bundle] : null;
    this.instances = [];
    this.overlays = [];   // {key, nv, index, opacity}
    this.onLocation = null;
  }

  LinkedViewer.prototype.init = async function () {
    var cfg = this.config;
    for (var v = 0; v < cfg.volumes.length; v++) {
      await this.addPanel(cfg.volumes[v]);
    }
    var all = this.instances;
    all.forEach(function (nv) {
      nv.broadcastTo(all.filter(function (o) { return o !== nv; }), { '2d': true, '3d': true });
    });
    this.setSliceType(cfg.sliceType || 'axial');
    return this;
  };

  LinkedViewer.prototype.addPanel = async function (vol) {
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
    await nv.attachToCanvas(canvas);
    var win = vol.presets['default'];
    var base = await loadImage(vol, this.bundle, { colormap: 'gray', cal_min: win[0], cal_max: win[1] });
    nv.addVolume(base);
    var overlays = this.config.overlays || [];
    for (var i = 0; i < overlays.length; i++) {
      var ov = overlays[i];
      if (ov.panels.indexOf(vol.key) < 0 && ov.panels.indexOf('all') < 0) { continue; }
      var img = await loadImage(ov, this.bundle, {
        colormap: ov.colormap, cal_min: ov.threshold, cal_max: ov.max,
        opacity: ov.visible ? ov.opacity : 0,
      });
      nv.addVolume(img);
      this.overlays.push({ key: ov.key, nv: nv, index: nv.volumes.length - 1, opacity: ov.opacity });
    }
    select.addEventListener('change', function () { self.setWindow(nv, vol.presets[select.value]); });
    nv.onLocationChange = function (data) {
      if (self.onLocation) { self.onLocation(data, vol.key); }
    };
    this.instances.push(nv);
  };

  LinkedViewer.prototype.setWindow = function (nv, range) {
    nv.volumes[0].cal_min = range[0];
    nv.volumes[0].cal_max = range[1];
    nv.updateGLVolume();
  };

  LinkedViewer.prototype.setSliceType = function (name) {
    var t = SLICE[name] === undefined ? 0 : SLICE[name];
    this.instances.forEach(function (nv) { nv.setSliceType(t); });
  };

  LinkedViewer.prototype.setThreshold = function (key, value) {
    this.overlays.forEach(function (o) {
      if (o.key !== key) { return; }
      o.nv.volumes[o.index].cal_min = value;
      o.nv.updateGLVolume();
    });
  };

  LinkedViewer.prototype.setOverlayVisible = function (key, visible) {
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
