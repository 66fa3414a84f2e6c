// Status page: refresh the main block every 5 s; retry / drop parked pushes via the admin API.
(function () {
  var main = document.getElementById("main");
  var updated = document.getElementById("updated");
  function refresh() {
    fetch("/?fragment=1", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        main.innerHTML = html;
        updated.textContent = "updated " + new Date().toLocaleTimeString();
      })
      .catch(function (e) { updated.textContent = "refresh failed (" + e + ")"; });
  }
  main.addEventListener("click", function (ev) {
    var b = ev.target;
    if (!b.dataset || !b.dataset.seq) return;
    var action = b.classList.contains("retry") ? "retry" : b.classList.contains("drop") ? "drop" : null;
    if (!action) return;
    var body;
    if (action === "drop") {
      var reason = window.prompt("Reason for dropping this push?");
      if (!reason) return;
      body = JSON.stringify({ reason: reason });
    }
    b.disabled = true;
    fetch("/admin/outbox/" + encodeURIComponent(b.dataset.peer) + "/" + b.dataset.seq + "/" + action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: body
    }).then(refresh, refresh);
  });
  setInterval(refresh, 5000);
  updated.textContent = "updated " + new Date().toLocaleTimeString();
})();
