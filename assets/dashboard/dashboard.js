// miniqueue dashboard: polls /dashboard/data once a second and shows it. Plain browser JavaScript
// (no build step); uPlot (window.uPlot) draws the charts, the per-topic sparklines are SVG.
// Rates are computed here from the counters of two consecutive snapshots.
(function () {
  'use strict';

  var POLL_MS = 1000;
  /** Points kept per series: two minutes at one per second. */
  var HISTORY_POINTS = 120;
  var TOKEN_KEY = 'miniqueue.dashboard.token';
  var SVG_NS = 'http://www.w3.org/2000/svg';

  var token = sessionStorage.getItem(TOKEN_KEY);
  var previous = null;
  var history = { t: [], publish: [], ack: [], ready: [], inFlight: [], delayed: [], fsyncMean: [], fsyncP99: [] };
  /** topic -> { row, cells, publish: number[], ack: number[] } */
  var rows = new Map();
  var charts = null;

  function $(id) { return document.getElementById(id); }

  function setText(id, text) {
    var el = $(id);
    if (el.textContent !== text) el.textContent = text;
  }

  function setStatus(text, level) {
    var el = $('status');
    el.textContent = text;
    el.dataset.level = level;
  }

  var intFormat = new Intl.NumberFormat('en-US');
  function fmtInt(n) { return intFormat.format(n); }
  function fmtRate(n) {
    if (n === null || n === undefined) return '–';
    return n >= 100 ? intFormat.format(Math.round(n)) : n.toFixed(1);
  }
  function fmtBytes(n) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n >= 100 ? 0 : 1)) + ' ' + units[i];
  }
  function fmtMs(ms) {
    if (ms === null || ms === undefined) return '–';
    if (ms < 1) return (ms * 1000).toFixed(0) + ' µs';
    return ms.toFixed(ms >= 100 ? 0 : ms >= 10 ? 1 : 2) + ' ms';
  }
  function fmtUptime(seconds) {
    var s = Math.floor(seconds);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d > 0) return d + 'd ' + h + 'h ' + m + 'm';
    if (h > 0) return h + 'h ' + m + 'm ' + (s % 60) + 's';
    return m + 'm ' + (s % 60) + 's';
  }

  function fmtClock(epochSeconds) {
    var d = new Date(epochSeconds * 1000);
    function two(n) { return n < 10 ? '0' + n : String(n); }
    return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
  }

  function push(series, value) {
    series.push(value);
    if (series.length > HISTORY_POINTS) series.shift();
  }

  /** Per-second rate of a counter between two snapshots; null without a previous one, 0 after a reset. */
  function rate(now, before, seconds) {
    if (before === undefined || before === null || seconds <= 0) return null;
    return Math.max(0, now - before) / seconds;
  }

  /** Mean and p99 upper bound (ms) of the fsyncs between two histogram snapshots; nulls if none. */
  function fsyncInterval(now, before) {
    if (before === null) return { mean: null, p99: null, count: 0 };
    var count = now.count - before.count;
    if (count <= 0) return { mean: null, p99: null, count: 0 };
    var mean = ((now.sumSeconds - before.sumSeconds) / count) * 1000;
    var p99 = null;
    for (var i = 0; i < now.buckets.length; i++) {
      var inBucket = now.buckets[i].count - (before.buckets[i] ? before.buckets[i].count : 0);
      if (inBucket >= 0.99 * count) {
        var le = now.buckets[i].leSeconds;
        p99 = le === null || !isFinite(le) ? null : le * 1000;
        break;
      }
    }
    return { mean: mean, p99: p99, count: count };
  }

  function makeChart(id, series, yLabel) {
    var el = $(id);
    var opts = {
      width: Math.max(300, el.clientWidth),
      height: 190,
      legend: { live: false },
      cursor: { show: false },
      scales: { x: { time: true }, y: { range: function (_u, _min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      // One line of wall-clock time per tick (uPlot's default adds a second line with the date).
      axes: [{ values: function (_u, splits) { return splits.map(fmtClock); } }, { label: yLabel, size: 60 }],
      series: [{}].concat(series.map(function (s) {
        return { label: s.label, stroke: s.color, width: 2, spanGaps: false, value: function (_u, v) { return v === null ? '–' : fmtRate(v); } };
      })),
    };
    var data = [[]].concat(series.map(function () { return []; }));
    return new window.uPlot(opts, data, el);
  }

  function ensureCharts() {
    if (charts !== null || typeof window.uPlot !== 'function') return;
    charts = {
      rates: makeChart('chart-rates', [{ label: 'published', color: '#2f6fde' }, { label: 'acked', color: '#1f8a4c' }], 'msg/s'),
      queue: makeChart('chart-queue', [
        { label: 'ready', color: '#2f6fde' }, { label: 'in flight', color: '#b7791f' }, { label: 'delayed', color: '#805ad5' },
      ], 'messages'),
      fsync: makeChart('chart-fsync', [{ label: 'mean', color: '#2f6fde' }, { label: 'p99 ≤', color: '#c53030' }], 'ms'),
    };
    if (typeof ResizeObserver === 'function') {
      new ResizeObserver(function () {
        for (var key in charts) {
          var chart = charts[key];
          var width = Math.max(300, chart.root.parentElement.clientWidth - 4);
          if (chart.width !== width) chart.setSize({ width: width, height: 190 });
        }
      }).observe($('main'));
    }
  }

  function drawCharts() {
    ensureCharts();
    if (charts === null) return;
    charts.rates.setData([history.t, history.publish, history.ack]);
    charts.queue.setData([history.t, history.ready, history.inFlight, history.delayed]);
    charts.fsync.setData([history.t, history.fsyncMean, history.fsyncP99]);
  }

  /** A small SVG line chart of the last values of `publish` and `ack` (per-second rates). */
  function sparkline(svg, publish, ack) {
    var width = 120, height = 24;
    var max = 1;
    for (var i = 0; i < publish.length; i++) max = Math.max(max, publish[i] || 0, ack[i] || 0);
    function points(values) {
      var step = width / Math.max(1, HISTORY_POINTS - 1);
      var offset = HISTORY_POINTS - values.length;
      var out = [];
      for (var j = 0; j < values.length; j++) {
        var v = values[j] || 0;
        out.push(((offset + j) * step).toFixed(1) + ',' + (height - 1 - (v / max) * (height - 2)).toFixed(1));
      }
      return out.join(' ');
    }
    svg.querySelector('.pub').setAttribute('points', points(publish));
    svg.querySelector('.ack').setAttribute('points', points(ack));
  }

  var TOPIC_FIELDS = ['ready', 'inFlight', 'delayed', 'consumers', 'deadLetters', 'publishRate', 'ackRate', 'spark', 'published', 'acked'];

  function newRow(topic) {
    var tr = document.createElement('tr');
    tr.dataset.topic = topic;
    var name = document.createElement('td');
    name.className = 'topic';
    name.textContent = topic;
    name.title = topic;
    tr.appendChild(name);
    var cells = {};
    TOPIC_FIELDS.forEach(function (field) {
      var td = document.createElement('td');
      td.dataset.field = field;
      if (field === 'spark') {
        var svg = document.createElementNS(SVG_NS, 'svg');
        svg.setAttribute('class', 'spark');
        svg.setAttribute('width', '120');
        svg.setAttribute('height', '24');
        svg.setAttribute('viewBox', '0 0 120 24');
        ['pub', 'ack'].forEach(function (cls) {
          var line = document.createElementNS(SVG_NS, 'polyline');
          line.setAttribute('class', cls);
          svg.appendChild(line);
        });
        td.appendChild(svg);
      } else {
        td.className = 'num';
      }
      cells[field] = td;
      tr.appendChild(td);
    });
    return { row: tr, cells: cells, publish: [], ack: [] };
  }

  function renderTopics(snapshot, before, seconds) {
    var tbody = document.querySelector('#topics tbody');
    var seen = new Set();
    var beforeByTopic = new Map();
    if (before !== null) before.topics.forEach(function (t) { beforeByTopic.set(t.topic, t); });
    snapshot.topics.forEach(function (t, index) {
      seen.add(t.topic);
      var entry = rows.get(t.topic);
      if (entry === undefined) {
        entry = newRow(t.topic);
        rows.set(t.topic, entry);
      }
      if (tbody.children[index] !== entry.row) tbody.insertBefore(entry.row, tbody.children[index] || null);
      var b = beforeByTopic.get(t.topic);
      var publishRate = rate(t.published, b && b.published, seconds);
      var ackRate = rate(t.acked, b && b.acked, seconds);
      if (publishRate !== null) { push(entry.publish, publishRate); push(entry.ack, ackRate); }
      var c = entry.cells;
      c.ready.textContent = fmtInt(t.ready);
      c.inFlight.textContent = fmtInt(t.inFlight);
      c.delayed.textContent = fmtInt(t.delayed);
      c.consumers.textContent = fmtInt(t.consumers);
      c.deadLetters.textContent = fmtInt(t.deadLetters);
      c.deadLetters.title = fmtInt(t.deadLettered) + ' moved to ' + t.topic + '.dead since the topic was created';
      c.deadLetters.classList.toggle('dead-some', t.deadLetters > 0);
      c.publishRate.textContent = fmtRate(publishRate);
      c.ackRate.textContent = fmtRate(ackRate);
      c.published.textContent = fmtInt(t.published);
      c.acked.textContent = fmtInt(t.acked);
      sparkline(c.spark.firstChild, entry.publish, entry.ack);
    });
    rows.forEach(function (entry, topic) {
      if (!seen.has(topic)) {
        entry.row.remove();
        rows.delete(topic);
      }
    });
    $('topics-empty').hidden = snapshot.topics.length > 0;
    var more = snapshot.totals.topics - snapshot.topics.length;
    $('topics-more').hidden = more <= 0;
    if (more > 0) $('topics-more').textContent = 'and ' + fmtInt(more) + ' more topics (included in the totals above).';
  }

  function render(snapshot) {
    var before = previous;
    var seconds = before === null ? 0 : (snapshot.nowMs - before.nowMs) / 1000;
    var totals = snapshot.totals;
    var publishRate = rate(totals.published, before && before.totals.published, seconds);
    var ackRate = rate(totals.acked, before && before.totals.acked, seconds);
    var fsync = fsyncInterval(snapshot.fsyncLatency, before && before.fsyncLatency);

    setStatus('live · ' + new Date(snapshot.nowMs).toLocaleTimeString(), snapshot.log.failedBatches > 0 ? 'warn' : 'good');
    setText('version', 'v' + snapshot.version);
    setText('uptime', fmtUptime(snapshot.uptimeSeconds));
    setText('total-ready', fmtInt(totals.ready));
    setText('total-in-flight', fmtInt(totals.inFlight));
    setText('total-delayed', fmtInt(totals.delayed));
    setText('total-topics', fmtInt(totals.topics));
    setText('total-consumers', fmtInt(totals.consumers));
    setText('total-dead', fmtInt(totals.deadLettered));
    setText('rate-publish', fmtRate(publishRate));
    setText('rate-ack', fmtRate(ackRate));
    setText('fsync-mean', fmtMs(fsync.mean));
    setText('fsync-p99', fsync.p99 === null ? '–' : '≤ ' + fmtMs(fsync.p99));
    setText('fsync-rate', fmtRate(rate(snapshot.log.fsyncs, before && before.log.fsyncs, seconds)));
    setText('fsync-policy', snapshot.fsyncPolicy);
    setText('failed-batches', fmtInt(snapshot.log.failedBatches));
    setText('log-bytes', fmtBytes(snapshot.log.bytes));
    setText('log-segments', fmtInt(snapshot.log.segments));
    setText('log-records', fmtInt(snapshot.log.records));
    var writeRate = rate(snapshot.log.writtenBytes, before && before.log.writtenBytes, seconds);
    setText('write-rate', writeRate === null ? '–' : fmtBytes(Math.round(writeRate)));
    setText('compaction-runs', fmtInt(snapshot.compaction.runs));
    setText('compaction-reclaimed', fmtBytes(snapshot.compaction.bytesReclaimed));
    setText('compaction-segments', fmtInt(snapshot.compaction.segmentsRemoved));
    setText('compaction-copied', fmtBytes(snapshot.compaction.bytesCopied));
    setText('compaction-failures', fmtInt(snapshot.compaction.failures));
    setText('conn-http', fmtInt(snapshot.connections.http));
    setText('conn-resp', fmtInt(snapshot.connections.resp));
    setText('conn-max', fmtInt(snapshot.connections.max));
    setText('node-version', snapshot.nodeVersion);

    push(history.t, snapshot.nowMs / 1000);
    push(history.publish, publishRate);
    push(history.ack, ackRate);
    push(history.ready, totals.ready);
    push(history.inFlight, totals.inFlight);
    push(history.delayed, totals.delayed);
    push(history.fsyncMean, fsync.mean);
    push(history.fsyncP99, fsync.p99);

    $('login').hidden = true;
    $('main').hidden = false;
    $('forget').hidden = token === null;
    renderTopics(snapshot, before, seconds);
    drawCharts();
    previous = snapshot;
  }

  function showLogin(message) {
    $('main').hidden = true;
    $('login').hidden = false;
    $('forget').hidden = true;
    $('login-error').textContent = message || '';
    setStatus('needs token', 'warn');
  }

  /** One poll; resolves true when polling should go on. */
  function poll() {
    var headers = { accept: 'application/json' };
    if (token !== null) headers.authorization = 'Bearer ' + token;
    return fetch('/dashboard/data', { headers: headers, cache: 'no-store' }).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (body) {
        if (res.status === 401) {
          var wrong = token !== null;
          token = null;
          sessionStorage.removeItem(TOKEN_KEY);
          showLogin(wrong ? 'That token was not accepted.' : '');
          return false;
        }
        if (!res.ok) {
          var loading = body !== null && body.code === 'MQ_ERR_LOADING';
          setStatus(loading ? 'replaying the log…' : 'error: ' + ((body && body.error) || 'HTTP ' + res.status), loading ? 'warn' : 'bad');
          return true;
        }
        render(body);
        return true;
      });
    }, function () {
      setStatus('server unreachable, retrying', 'bad');
      return true;
    });
  }

  var timer = null;
  function loop() {
    timer = null;
    poll().then(function (goOn) {
      if (goOn && timer === null) timer = setTimeout(loop, POLL_MS);
    });
  }

  $('login').addEventListener('submit', function (event) {
    event.preventDefault();
    token = $('token').value.trim();
    if (token === '') { token = null; return; }
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    $('login-error').textContent = '';
    setStatus('connecting…', 'warn');
    if (timer !== null) clearTimeout(timer);
    loop();
  });

  $('forget').addEventListener('click', function () {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    if (timer !== null) clearTimeout(timer);
    timer = null;
    previous = null;
    showLogin('');
  });

  loop();
})();
