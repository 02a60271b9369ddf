/* gdsynth exam page: builds the linked viewer from window.GDSYNTH_EXAM and wires the controls. */
(function () {
  'use strict';

  function fmt(v) { return Number(v).toFixed(1); }

  function status(text, isError) {
    var s = document.getElementById('status');
    s.textContent = text;
    s.className = isError ? 'status error' : 'status';
  }

  async function main() {
    var cfg = window.GDSYNTH_EXAM;
    if (!cfg) { status('exam data missing (data/<id>/exam.js not loaded)', true); return; }
    var viewer;
    try {
      viewer = await window.GdViewer.create(document.getElementById('viewer'), cfg);
    } catch (err) {
      var hint = location.protocol === 'file:' && !cfg.bundle
        ? ' Images are not embedded in this site: open it with "gdsynth review PRED --bids BIDS -o OUT --serve" (or serve the folder over http).'
        : '';
      status('could not load the images: ' + err + '.' + hint, true);
      window.gdViewerError = String(err);
      return;
    }
    window.gdViewer = viewer;
    viewer.onLocation = function (data) {
      var mm = viewer.crosshairMM();
      document.getElementById('location').textContent =
        'crosshair (RAS mm): ' + fmt(mm[0]) + ', ' + fmt(mm[1]) + ', ' + fmt(mm[2]);
    };
    document.getElementById('slice-type').addEventListener('change', function (e) {
      viewer.setSliceType(e.target.value);
    });
    document.querySelectorAll('input.overlay-toggle').forEach(function (box) {
      box.addEventListener('change', function () {
        status('loading ' + box.dataset.overlay + '…');
        viewer.setOverlayVisible(box.dataset.overlay, box.checked).then(function () {
          status('ready');
        }).catch(function (err) { status('could not load the overlay: ' + err, true); });
      });
    });
    var slider = document.getElementById('threshold');
    if (slider) {
      slider.addEventListener('input', function () {
        document.getElementById('threshold-value').textContent = Number(slider.value).toFixed(3);
        viewer.setThreshold('enhancement', Number(slider.value));
      });
    }
    document.querySelectorAll('tr.lesion').forEach(function (row) {
      row.addEventListener('click', function () {
        document.querySelectorAll('tr.lesion.selected').forEach(function (r) { r.classList.remove('selected'); });
        row.classList.add('selected');
        viewer.goto([Number(row.dataset.x), Number(row.dataset.y), Number(row.dataset.z)]);
      });
    });
    status('ready');
    window.gdViewerReadyMs = performance.now();  // since navigation start (browser test)
    window.gdViewerReady = true;
  }

  window.addEventListener('DOMContentLoaded', main);
})();
