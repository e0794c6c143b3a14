#!/usr/bin/env node
// The hello-world tutorial's sync hook written for Node's `http` module, as a user would write
// it, with a call counter, for the `hello-load` benchmark. Node keeps connections alive
// (HTTP/1.1) and sends each response in one write. Listens on 127.0.0.1 on a free port and
// prints it; GET /calls answers the number of POSTs served so far. Stops when stdin closes,
// so it never outlives the benchmark that started it.
//
// Usage: node hello_hook.js
"use strict";
const http = require("http");

function sync(parent, children) {
  const who = (parent.spec || {}).who || "World";
  return {
    status: { pods: Object.keys(children["Pod.v1"] || {}).length },
    children: [
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: parent.metadata.name },
        spec: {
          restartPolicy: "OnFailure",
          containers: [
            { name: "hello", image: "busybox", command: ["echo", `Hello, ${who}!`] },
          ],
        },
      },
    ],
  };
}

let calls = 0;
const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/calls") {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end(String(calls));
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    calls += 1;
    let body;
    try {
      const observed = JSON.parse(Buffer.concat(chunks).toString());
      body = JSON.stringify(sync(observed.parent, observed.children));
    } catch (e) {
      res.writeHead(400, { "Content-Type": "text/plain" });
      res.end(String(e));
      return;
    }
    res.writeHead(200, {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(body),
    });
    res.end(body);
  });
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
