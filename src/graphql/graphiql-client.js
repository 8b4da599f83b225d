// Runs in the browser, on the GraphiQL page that src/graphql/graphiqlPage.ts serves: it points Monaco
// at its workers (served by this instance, not a CDN) and renders yoga's GraphiQL with a fetcher of
// our own, because yoga's sends the header editor's headers only inside each operation and never in
// graphql-ws connectionParams, where Chronograph reads a WebSocket's credential.
(function () {
  'use strict';
  var base = document.currentScript.src.replace(/[^/]*$/, '');
  var WORKERS = { editorWorkerService: 'editor.worker.js', json: 'json.worker.js', graphql: 'graphql.worker.js' };
  self.MonacoEnvironment = {
    globalAPI: false,
    getWorkerUrl: function (_moduleId, label) {
      return base + (WORKERS[label] || WORKERS.editorWorkerService);
    },
  };

  // "Bearer <API key>" as prefilled, or "Bearer " with nothing after it, is a placeholder, not a credential.
  var PLACEHOLDER = /^\s*(Bearer\s*)?(<[^>]*>)?\s*$/i;

  /** The header editor's headers, without an Authorization placeholder the user has not filled in. */
  function headersToSend(headers) {
    var result = {};
    Object.keys(headers || {}).forEach(function (name) {
      var value = headers[name];
      if (value === undefined || value === null) return;
      if (name.toLowerCase() === 'authorization' && PLACEHOLDER.test(String(value))) return;
      result[name] = String(value);
    });
    return result;
  }

  function splitAuthorization(headers) {
    var authorization;
    var rest = {};
    Object.keys(headers).forEach(function (name) {
      if (name.toLowerCase() === 'authorization') authorization = headers[name];
      else rest[name] = headers[name];
    });
    return { authorization: authorization, rest: rest };
  }

  /** The operations a document defines ({ type, name }), from its top level, outside strings and comments. */
  function operationsOf(query) {
    var source = query.replace(/"""[\s\S]*?"""|"(?:\\.|[^"\\])*"|#[^\n\r]*/g, ' ');
    var operations = [];
    var depth = 0;
    var pending;
    var pattern = /[{}()]|[_A-Za-z][_0-9A-Za-z]*/g;
    var match;
    while ((match = pattern.exec(source))) {
      var token = match[0];
      if (token === '{' || token === '(') {
        if (depth === 0) {
          // An operation is complete at its variables' "(" or its selection set's "{", whichever comes first.
          if (pending && !pending.done && pending.type !== 'fragment') operations.push(pending);
          else if (!pending && token === '{') operations.push({ type: 'query', name: undefined });
          pending = token === '(' && pending ? { type: pending.type, name: pending.name, done: true } : undefined;
        }
        depth++;
      } else if (token === '}' || token === ')') {
        depth--;
      } else if (depth === 0) {
        if (pending && !pending.done && pending.name === undefined && pending.type !== 'fragment') pending.name = token;
        else if (token === 'query' || token === 'mutation' || token === 'subscription' || token === 'fragment')
          pending = { type: token, name: undefined };
      }
    }
    return operations;
  }

  /**
   * The operation to run. GraphiQL updates its operation name a moment after an edit; a name the
   * document no longer defines, with one operation left, means that one (instead of an error).
   */
  function operationToRun(params) {
    var operations = operationsOf(params.query);
    var named = operations.filter(function (op) {
      return op.name === params.operationName;
    })[0];
    if (named) return named;
    return operations.length === 1 ? operations[0] : { type: 'query', name: params.operationName };
  }

  var options = JSON.parse(document.getElementById('graphiql-options').textContent);
  var endpoint = new URL(options.endpoint, location.href);
  var wsUrl = endpoint.href.replace(/^http/, 'ws');
  var clients = {};

  /** One graphql-ws client per credential: a socket is authenticated once, at connection_init. */
  function wsClient(headers) {
    var parts = splitAuthorization(headers);
    var key = JSON.stringify([parts.authorization || null, parts.rest]);
    if (!clients[key]) {
      var connectionParams = { headers: parts.rest };
      if (parts.authorization) connectionParams.authorization = parts.authorization;
      clients[key] = graphqlWs.createClient({ url: wsUrl, lazy: true, retryAttempts: 2, connectionParams: connectionParams });
    }
    return clients[key];
  }

  function describeClose(error) {
    if (error && typeof error.code === 'number') return 'WebSocket closed: ' + error.code + (error.reason ? ' ' + error.reason : '');
    return error && error.message ? error.message : String(error);
  }

  function subscribe(params, headers) {
    var iterator = wsClient(headers).iterate({ query: params.query, variables: params.variables, operationName: params.operationName });
    var finished = false;
    return {
      [Symbol.asyncIterator]: function () {
        return this;
      },
      next: function () {
        if (finished) return Promise.resolve({ done: true, value: undefined });
        return iterator.next().catch(function (error) {
          finished = true;
          return { done: false, value: { errors: [{ message: describeClose(error) }] } };
        });
      },
      return: function () {
        finished = true;
        return iterator.return ? iterator.return() : Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  function post(params, headers) {
    return fetch(endpoint, {
      method: 'POST',
      credentials: 'same-origin',
      headers: Object.assign(
        { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' },
        headers,
      ),
      body: JSON.stringify({ query: params.query, variables: params.variables, operationName: params.operationName }),
    }).then(function (response) {
      return response.text().then(function (text) {
        try {
          return JSON.parse(text);
        } catch (_) {
          return { errors: [{ message: 'HTTP ' + response.status + ': ' + text.slice(0, 500) }] };
        }
      });
    });
  }

  function fetcher(params, opts) {
    var headers = headersToSend(opts && opts.headers);
    var operation = operationToRun(params);
    var request = { query: params.query, variables: params.variables, operationName: operation.name };
    return operation.type === 'subscription' ? subscribe(request, headers) : post(request, headers);
  }

  var props = Object.assign({}, options, { fetcher: fetcher });
  delete props.endpoint;
  YogaGraphiQL.renderYogaGraphiQL(document.getElementById('root'), props);
})();
