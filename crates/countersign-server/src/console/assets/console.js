// countersign console: live updates of active runs over SSE. The pages work without this
// file; it only refreshes the "Active runs" list while a page showing it is open.
(function () {
  "use strict";
  var list = document.querySelector("[data-live='active-runs']");
  if (!list || typeof EventSource === "undefined") {
    return;
  }
  var source = new EventSource("/console/events");
  source.addEventListener("runs", function (event) {
    var runs;
    try {
      runs = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    if (runs.length === 0) {
      var empty = document.createElement("li");
      empty.textContent = "No active runs.";
      list.appendChild(empty);
    }
    runs.forEach(function (run) {
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = "/runs/" + encodeURIComponent(run.id);
      link.textContent = run.suite + " (" + run.environment + ")";
      item.appendChild(link);
      item.appendChild(document.createTextNode(" " + run.state));
      list.appendChild(item);
    });
    var count = document.querySelector("[data-live='active-count']");
    if (count) {
      count.textContent = String(runs.length);
    }
  });
  source.onerror = function () {
    // The browser reconnects by itself; a signed-out session gets 401 and stops.
  };
})();
