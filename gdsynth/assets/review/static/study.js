/* gdsynth reader study: one case, the linked viewer, lesion marks and the answer form. */
(function () {
  'use strict';
  var marks = [];
  var started = Date.now();

  function fmt(p) { return p.map(function (v) { return Number(v).toFixed(1); }).join(', '); }

  function drawMarks() {
    var list = document.getElementById('marks');
    list.textContent = '';
    marks.forEach(function (p, i) {
      var li = document.createElement('li');
      li.textContent = 'lesion at ' + fmt(p) + ' mm ';
      var go = document.createElement('button');
      go.type = 'button'; go.textContent = 'show';
      go.addEventListener('click', function () { window.gdViewer.goto(p); });
      var rm = document.createElement('button');
      rm.type = 'button'; rm.textContent = 'remove'; rm.className = 'remove';
      rm.addEventListener('click', function () { marks.splice(i, 1); drawMarks(); });
      li.appendChild(go); li.appendChild(rm);
      list.appendChild(li);
    });
  }

  function prefill(form, answer) {
    if (!answer) { return; }
    ['call', 'quality', 'confidence'].forEach(function (name) {
      var box = form.querySelector('input[name="' + name + '"][value="' + answer[name] + '"]');
      if (box) { box.checked = true; }
    });
    marks = (answer.lesions || []).slice();
    drawMarks();
  }

  async function submit(cfg, form) {
    var data = new FormData(form);
    var body = {
      case_id: cfg.caseId, token: cfg.token, call: data.get('call'),
      quality: Number(data.get('quality')), confidence: Number(data.get('confidence')),
      lesions: marks, seconds: (Date.now() - started) / 1000,
    };
    var res = await fetch(cfg.answerUrl, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body), credentials: 'same-origin',
    });
    if (!res.ok) { throw new Error('server answered ' + res.status); }
    return res.json();
  }

  async function main() {
    var cfg = JSON.parse(document.getElementById('case-config').textContent);
    var form = document.getElementById('answer');
    prefill(form, cfg.answer);
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      document.getElementById('saved').textContent = 'saving…';
      submit(cfg, form).then(function (reply) {
        document.getElementById('saved').textContent = 'saved';
        window.gdLastReply = reply;
        window.location.assign(reply.next);
      }).catch(function (err) {
        document.getElementById('saved').textContent = 'not saved: ' + err;
      });
    });
    var status = document.getElementById('status');
    try {
      window.gdViewer = await window.GdViewer.create(document.getElementById('viewer'), cfg);
    } catch (err) {
      status.textContent = 'could not load the images: ' + err;
      status.className = 'status error';
      window.gdViewerError = String(err);
      return;
    }
    window.gdViewer.onLocation = function () {
      document.getElementById('location').textContent =
        'crosshair (RAS mm): ' + fmt(window.gdViewer.crosshairMM());
    };
    document.getElementById('slice-type').addEventListener('change', function (e) {
      window.gdViewer.setSliceType(e.target.value);
    });
    document.getElementById('mark').addEventListener('click', function () {
      marks.push(window.gdViewer.crosshairMM().map(function (v) { return Math.round(v * 100) / 100; }));
      drawMarks();
    });
    status.textContent = 'ready';
    window.gdViewerReady = true;
  }

  window.addEventListener('DOMContentLoaded', main);
})();
