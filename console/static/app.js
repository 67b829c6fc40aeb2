// rtstream console: a plain client of the public API (no framework, no build).
// The API key lives in sessionStorage only. Every call sends it as X-API-Key.
// The EventSource of the results route cannot set headers: it passes a
// subscribe token minted for that one stream, never the key.
(function () {
  'use strict';

  var KEY_STORE = 'rtstream.console.apiKey';
  var STREAM_STORE = 'rtstream.console.stream';
  var MAX_SHOWN = 500; // results kept on the page; older ones are dropped

  function $(id) { return document.getElementById(id); }

  var els = {
    keyForm: $('key-form'), key: $('api-key'), forgetKey: $('forget-key'), keyOut: $('key-outcome'),
    createForm: $('create-form'), newName: $('new-name'), newFilter: $('new-filter'), newMap: $('new-map'),
    pickForm: $('pick-form'), select: $('stream-select'), fromStart: $('from-start'),
    refresh: $('refresh-streams'), moreStreams: $('more-streams'), streamsOut: $('streams-outcome'),
    sendForm: $('send-form'), events: $('events'), sendOut: $('send-outcome'), sendTarget: $('send-target'),
    feedState: $('feed-state'), stop: $('stop-watching'), clear: $('clear-results'),
    results: $('results'), resultsOut: $('results-outcome'),
    loadDead: $('load-dead'), moreDead: $('more-dead'), deadOut: $('dead-outcome'), dead: $('dead-letters'),
    newSchema: $('new-schema'), newSource: $('new-source'),
    refreshUsage: $('refresh-usage'), usage: $('usage'), usageRows: $('usage-rows'), usageOut: $('usage-outcome')
  };

  var state = { source: null, gen: 0, watching: '', lastCursor: '', streamsNext: '', deadNext: '', deadStream: '' };

  // ---- storage -----------------------------------------------------------

  function storage() {
    try { return window.sessionStorage; } catch (e) { return null; }
  }
  function apiKey() {
    var s = storage();
    return (s && s.getItem(KEY_STORE)) || '';
  }
  function remember(name, value) {
    var s = storage();
    if (!s) { return; }
    if (value) { s.setItem(name, value); } else { s.removeItem(name); }
  }

  // ---- messages ----------------------------------------------------------

  function say(out, text, kind) {
    out.textContent = '';
    out.className = 'outcome' + (kind ? ' ' + kind : '');
    if (text) { out.textContent = text; }
  }

  // sayProblem shows an error answer readably: status, title, detail, the
  // field errors of an application/problem+json body, and Retry-After.
  function sayProblem(out, what, err) {
    out.textContent = '';
    out.className = 'outcome error';
    var head = document.createElement('p');
    var strong = document.createElement('strong');
    strong.textContent = what + ' failed';
    head.appendChild(strong);
    var p = err.problem;
    var summary = err.status ? err.status + ' ' + ((p && p.title) || err.statusText || '') : err.message;
    head.appendChild(document.createTextNode(': ' + summary.trim()));
    out.appendChild(head);
    if (p && p.detail) {
      var detail = document.createElement('p');
      detail.textContent = p.detail;
      out.appendChild(detail);
    } else if (!p && err.body) {
      var body = document.createElement('p');
      body.textContent = err.body.slice(0, 500);
      out.appendChild(body);
    }
    if (p && Array.isArray(p.errors) && p.errors.length) {
      var ul = document.createElement('ul');
      p.errors.forEach(function (fe) {
        var li = document.createElement('li');
        var code = document.createElement('code');
        code.textContent = fe.pointer || '/';
        li.appendChild(code);
        li.appendChild(document.createTextNode(' ' + (fe.detail || '')));
        ul.appendChild(li);
      });
      out.appendChild(ul);
    }
    if (err.retryAfter) {
      var retry = document.createElement('p');
      retry.textContent = 'Retry after ' + err.retryAfter + ' s.';
      out.appendChild(retry);
    }
    if (err.status === 401) {
      var hint = document.createElement('p');
      hint.textContent = 'Check the API key above.';
      out.appendChild(hint);
    }
  }

  // ---- API ---------------------------------------------------------------

  // api calls the API with the key and resolves to the decoded JSON body (or
  // null); any other answer rejects with an Error carrying status, problem
  // (the problem+json body, when there is one) and retryAfter.
  function api(method, path, body, contentType) {
    var key = apiKey();
    if (!key) {
      return Promise.reject(new Error('enter an API key first'));
    }
    var headers = { 'X-API-Key': key, 'Accept': 'application/json' };
    if (body !== undefined) { headers['Content-Type'] = contentType || 'application/json'; }
    return fetch(path, { method: method, headers: headers, body: body, cache: 'no-store', credentials: 'omit' })
      .then(function (res) {
        return res.text().then(function (text) {
          var data = null;
          if (text) {
            try { data = JSON.parse(text); } catch (e) { data = null; }
          }
          if (res.ok) { return data; }
          var err = new Error(res.status + ' ' + res.statusText);
          err.status = res.status;
          err.statusText = res.statusText;
          err.body = text;
          var type = res.headers.get('Content-Type') || '';
          if (data && (type.indexOf('application/problem+json') === 0 || data.status)) { err.problem = data; }
          err.retryAfter = res.headers.get('Retry-After');
          throw err;
        });
      });
  }

  function streamPath(id) { return '/v1/streams/' + encodeURIComponent(id); }

  // ---- streams -----------------------------------------------------------

  function optionFor(st) {
    var opt = document.createElement('option');
    opt.value = st.id;
    opt.textContent = st.name ? st.name + ' (' + st.id + ')' : st.id;
    return opt;
  }

  function loadStreams(more) {
    var path = '/v1/streams?limit=100' + (more && state.streamsNext ? '&after=' + encodeURIComponent(state.streamsNext) : '');
    say(els.streamsOut, 'Loading streams…');
    return api('GET', path).then(function (page) {
      var keep = more ? null : (els.select.value || (storage() && storage().getItem(STREAM_STORE)) || '');
      if (!more) { els.select.textContent = ''; }
      (page.streams || []).forEach(function (st) { els.select.appendChild(optionFor(st)); });
      if (!els.select.options.length) {
        var none = document.createElement('option');
        none.value = '';
        none.textContent = '(no streams yet: create one)';
        els.select.appendChild(none);
      }
      if (keep) { els.select.value = keep; }
      state.streamsNext = page.next || '';
      els.moreStreams.hidden = !state.streamsNext;
      var n = els.select.querySelectorAll('option[value]:not([value=""])').length;
      say(els.streamsOut, n + (n === 1 ? ' stream' : ' streams') + ' listed.');
    }).catch(function (err) { sayProblem(els.streamsOut, 'Listing streams', err); });
  }

  function createStream(ev) {
    ev.preventDefault();
    var body = {};
    var name = els.newName.value.trim();
    if (name) { body.name = name; }
    var filter = els.newFilter.value.trim();
    var map = els.newMap.value.trim();
    if (filter || map) {
      body.processor = {};
      if (filter) { body.processor.filter = filter; }
      if (map) { body.processor.map = map; }
    }
    var schema = els.newSchema.value.trim();
    if (schema) {
      try { body.schema = JSON.parse(schema); } catch (e) {
        say(els.streamsOut, 'The schema is not JSON: ' + e.message, 'error');
        return;
      }
    }
    var topic = els.newSource.value.trim();
    if (topic) { body.source = { topic: topic, format: 'json', from: 'earliest' }; }
    say(els.streamsOut, 'Creating…');
    api('POST', '/v1/streams', JSON.stringify(body)).then(function (st) {
      var opt = optionFor(st);
      var placeholder = els.select.querySelector('option[value=""]');
      if (placeholder) { placeholder.remove(); }
      els.select.appendChild(opt);
      els.select.value = st.id;
      say(els.streamsOut, 'Created stream ' + st.id + '. Watching it.', 'ok');
      // A new stream has no history: replaying from the start costs nothing
      // and catches results of events sent before the feed is connected.
      watch(st.id, true);
    }).catch(function (err) { sayProblem(els.streamsOut, 'Creating the stream', err); });
  }

  // ---- results -----------------------------------------------------------

  function setFeedState(text, kind) {
    els.feedState.textContent = text;
    els.feedState.className = kind || '';
  }

  function stopWatching() {
    state.gen += 1; // a token still being minted opens nothing
    if (state.source) {
      state.source.close();
      state.source = null;
    }
    els.stop.disabled = true;
    setFeedState(state.watching ? 'stopped' : 'not watching');
  }

  function watch(id, fromStart) {
    stopWatching();
    say(els.resultsOut, '');
    if (!id) { return; }
    if (!apiKey()) {
      say(els.resultsOut, 'Enter an API key first.', 'error');
      return;
    }
    els.results.textContent = '';
    state.watching = id;
    state.lastCursor = '';
    remember(STREAM_STORE, id);
    els.sendTarget.textContent = 'to ' + id;
    openFeed(id, fromStart ? 'from=earliest' : '');
  }

  // openFeed mints a subscribe token (results of this one stream, for an
  // hour) and opens the EventSource with it: the key itself never goes in
  // a URL. When the token expires, a new one resumes after the last result.
  function openFeed(id, start) {
    setFeedState('connecting to ' + id + '…');
    var gen = state.gen;
    api('POST', streamPath(id) + '/tokens', JSON.stringify({ ttl: '1h' })).then(function (tok) {
      if (state.gen !== gen) { return; }
      listen(id, tok, streamPath(id) + '/results?token=' + encodeURIComponent(tok.token) + (start ? '&' + start : ''));
    }).catch(function (err) {
      if (state.gen !== gen) { return; }
      setFeedState('closed', 'error');
      sayProblem(els.resultsOut, 'Watching ' + id, err);
    });
  }

  function listen(id, tok, url) {
    // EventSource reconnects by itself after a dropped connection and sends
    // the last id it saw as Last-Event-ID, so the server resumes right after
    // the last result shown: no gap, no duplicate.
    var es = new EventSource(url);
    state.source = es;
    els.stop.disabled = false;
    es.addEventListener('open', function () {
      if (state.source === es) { setFeedState('live: ' + id, 'ok'); }
    });
    es.addEventListener('result', function (msg) {
      state.lastCursor = msg.lastEventId || state.lastCursor;
      showResult(msg.data, msg.lastEventId);
    });
    es.addEventListener('end', function () {
      if (state.source !== es) { return; }
      es.close();
      state.source = null;
      els.stop.disabled = true;
      setFeedState('ended: the stream was deleted', 'error');
    });
    es.addEventListener('error', function () {
      if (state.source !== es) { return; }
      if (es.readyState === EventSource.CONNECTING) {
        setFeedState('reconnecting to ' + id + ' (resumes after the last result)…', 'warn');
        return;
      }
      state.source = null;
      if (Date.parse(tok.expires_at) <= Date.now() + 5000) {
        // The token expired: a new one, resuming after the last result.
        openFeed(id, state.lastCursor ? 'last_event_id=' + encodeURIComponent(state.lastCursor) : '');
        return;
      }
      // Closed for good: the server answered with an error, which
      // EventSource does not expose. Ask the stream route for the problem.
      els.stop.disabled = true;
      setFeedState('closed', 'error');
      api('GET', streamPath(id)).then(function () {
        say(els.resultsOut, 'The results connection was refused; the stream exists. Try Watch again.', 'error');
      }).catch(function (err) { sayProblem(els.resultsOut, 'Watching ' + id, err); });
    });
  }

  function showResult(data, cursor) {
    var r;
    try { r = JSON.parse(data); } catch (e) { r = { data: data }; }
    var li = document.createElement('li');
    li.className = 'record';
    var meta = document.createElement('p');
    meta.className = 'meta';
    meta.textContent = 'cursor ' + (cursor || '?') + ' · event ' + (r.event_id || '?') +
      (r.processed_at ? ' · processed ' + r.processed_at : '');
    var pre = document.createElement('pre');
    pre.className = 'data';
    pre.textContent = JSON.stringify(r.data, null, 2);
    li.appendChild(meta);
    li.appendChild(pre);
    els.results.insertBefore(li, els.results.firstChild);
    while (els.results.children.length > MAX_SHOWN) {
      els.results.removeChild(els.results.lastChild);
    }
  }

  // ---- sending -----------------------------------------------------------

  // classify picks the content type for the textarea: a whole JSON document
  // (one value, or an array: a batch) is application/json; several lines
  // that are not one document are NDJSON. What is neither is sent as JSON
  // anyway, so that the server's 400 says where it goes wrong.
  function classify(text) {
    try {
      JSON.parse(text);
      return 'application/json';
    } catch (e) {
      var lines = text.split('\n').filter(function (l) { return l.trim() !== ''; });
      return lines.length > 1 ? 'application/x-ndjson' : 'application/json';
    }
  }

  function sendEvents(ev) {
    ev.preventDefault();
    var id = state.watching || els.select.value;
    if (!id) {
      say(els.sendOut, 'Pick or create a stream first.', 'error');
      return;
    }
    var text = els.events.value.trim();
    if (!text) {
      say(els.sendOut, 'Write at least one event.', 'error');
      return;
    }
    var type = classify(text);
    say(els.sendOut, 'Sending…');
    api('POST', streamPath(id) + '/events', text + (type === 'application/x-ndjson' ? '\n' : ''), type).then(function (ack) {
      var n = ack && ack.accepted;
      say(els.sendOut, 'Accepted ' + n + (n === 1 ? ' event' : ' events') + ' (' + type + ') to ' + id + '.', 'ok');
    }).catch(function (err) { sayProblem(els.sendOut, 'Sending', err); });
  }

  // ---- dead letters ------------------------------------------------------

  function loadDead(more) {
    var id = state.watching || els.select.value;
    if (!id) {
      say(els.deadOut, 'Pick or create a stream first.', 'error');
      return;
    }
    if (!more || state.deadStream !== id) {
      els.dead.textContent = '';
      state.deadNext = '';
      state.deadStream = id;
    }
    var path = streamPath(id) + '/dead-letters?limit=100' + (state.deadNext ? '&after=' + encodeURIComponent(state.deadNext) : '');
    say(els.deadOut, 'Loading dead letters of ' + id + '…');
    api('GET', path).then(function (page) {
      var letters = (page && page.dead_letters) || [];
      letters.forEach(function (d) {
        var li = document.createElement('li');
        li.className = 'record';
        var meta = document.createElement('p');
        meta.className = 'meta';
        meta.textContent = 'event ' + (d.event_id || '?') + (d.failed_at ? ' · failed ' + d.failed_at : '');
        var reason = document.createElement('p');
        reason.className = 'reason';
        reason.textContent = d.reason || '';
        var pre = document.createElement('pre');
        pre.className = 'data';
        pre.textContent = JSON.stringify(d.data, null, 2);
        li.appendChild(meta);
        li.appendChild(reason);
        li.appendChild(pre);
        els.dead.appendChild(li);
      });
      // A page may be short and still name a next one: the server bounds
      // the work of one read.
      state.deadNext = (page && page.next) || '';
      els.moreDead.hidden = !state.deadNext || !letters.length;
      var n = els.dead.children.length;
      say(els.deadOut, n ? n + (n === 1 ? ' dead letter' : ' dead letters') + ' of ' + id + '.' : 'No dead letters for ' + id + '.');
    }).catch(function (err) {
      if (err.status === 404 && err.problem && /route/i.test(err.problem.detail || '')) {
        say(els.deadOut, 'This server does not serve dead letters (404: no such route).', 'error');
        return;
      }
      sayProblem(els.deadOut, 'Loading dead letters', err);
    });
  }

  // ---- usage -------------------------------------------------------------

  // loadUsage shows GET /v1/usage: each quota's use and limit, then what
  // the tenant sent in the last minute, hour and day.
  function loadUsage() {
    say(els.usageOut, 'Loading usage…');
    api('GET', '/v1/usage').then(function (u) {
      els.usageRows.textContent = '';
      var row = function (name, used, limit) {
        var tr = document.createElement('tr');
        [name, String(used), limit].forEach(function (text, i) {
          var cell = document.createElement(i === 0 ? 'th' : 'td');
          if (i === 0) { cell.scope = 'row'; }
          cell.textContent = text;
          tr.appendChild(cell);
        });
        els.usageRows.appendChild(tr);
      };
      Object.keys(u.quotas || {}).sort().forEach(function (q) {
        var v = u.quotas[q];
        row(q, v.used, v.limit ? String(v.limit) : 'none');
      });
      ['minute', 'hour', 'day'].forEach(function (w) {
        var v = (u.sent || {})[w] || { requests: 0, bytes: 0 };
        row('sent in the last ' + w, v.requests + ' requests, ' + v.bytes + ' bytes', '');
      });
      els.usage.hidden = false;
      say(els.usageOut, 'Usage of tenant ' + u.tenant + '.', 'ok');
    }).catch(function (err) { sayProblem(els.usageOut, 'Reading usage', err); });
  }

  // ---- wiring ------------------------------------------------------------

  els.keyForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var key = els.key.value.trim();
    remember(KEY_STORE, key);
    if (!key) {
      say(els.keyOut, 'No key set.', 'error');
      return;
    }
    say(els.keyOut, 'Key set for this tab.', 'ok');
    loadStreams(false);
  });
  els.forgetKey.addEventListener('click', function () {
    remember(KEY_STORE, '');
    els.key.value = '';
    stopWatching();
    say(els.keyOut, 'Key forgotten.');
    els.key.focus();
  });
  els.createForm.addEventListener('submit', createStream);
  els.refreshUsage.addEventListener('click', loadUsage);
  els.pickForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (!els.select.value) {
      say(els.streamsOut, 'Pick a stream first.', 'error');
      return;
    }
    watch(els.select.value, els.fromStart.checked);
  });
  els.refresh.addEventListener('click', function () { loadStreams(false); });
  els.moreStreams.addEventListener('click', function () { loadStreams(true); });
  els.sendForm.addEventListener('submit', sendEvents);
  els.events.addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { sendEvents(ev); }
  });
  els.stop.addEventListener('click', stopWatching);
  els.clear.addEventListener('click', function () { els.results.textContent = ''; });
  els.loadDead.addEventListener('click', function () { loadDead(false); });
  els.moreDead.addEventListener('click', function () { loadDead(true); });
  window.addEventListener('pagehide', function () { if (state.source) { state.source.close(); } });

  if (apiKey()) {
    els.key.value = apiKey();
    say(els.keyOut, 'Using the key kept for this tab.');
    loadStreams(false);
  }
}());
