// The live page: polls /api/cameras, shows each camera's newest annotated snapshot, adds and removes cameras.
// Snapshots are fetched (not <img src=stream.mjpg>) so that the Authorization header can be sent when a
// token is set, and so that a camera or server that goes away and comes back is simply picked up again.
"use strict";

const LIST_PERIOD_MS = 1000;
const PICTURE_PERIOD_MS = 300;
const RETRY_MS = 1000;
const tiles = new Map();
let token = sessionStorage.getItem("blazestream-token") || "";

const $ = (id) => document.getElementById(id);

function headers(extra = {}) {
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  if (response.status === 401) {
    $("token-form").hidden = false;
  }
  return response;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.message || `HTTP ${response.status}`;
  } catch (e) {
    return `HTTP ${response.status}`;
  }
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function makeTile(id) {
  const tile = el("div", "tile");
  tile.dataset.camera = id;
  const picture = el("div", "picture");
  const img = el("img");
  img.alt = `camera ${id}`;
  img.dataset.updates = "0";
  const overlay = el("div", "overlay", "waiting for a frame…");
  picture.append(img, overlay);
  const info = el("div", "info");
  const name = el("span", "id", id);
  const status = el("span", "badge status", "…");
  const fps = el("span", "fps muted");
  const people = el("span", "people muted");
  const spacer = el("span", "spacer");
  const remove = el("button", "remove", "Remove");
  remove.type = "button";
  remove.addEventListener("click", () => removeCamera(id, remove));
  info.append(name, status, fps, people, spacer, remove);
  const uri = el("div", "uri");
  const error = el("div", "error");
  tile.append(picture, info, uri, error);
  $("grid").append(tile);
  const entry = { tile, img, overlay, status, fps, people, uri, error, alive: true, seq: "", url: null };
  pictureLoop(id, entry);
  return entry;
}

function update(entry, camera) {
  entry.status.textContent = camera.status;
  entry.status.className = `badge status ${camera.status}`;
  entry.fps.textContent = `${camera.fps.toFixed(1)} fps`;
  entry.people.textContent = `${camera.poses} ${camera.poses === 1 ? "person" : "people"}`;
  entry.uri.textContent = camera.uri;
  entry.error.textContent = camera.status === "up" ? "" : camera.last_error || "";
  entry.tile.dataset.status = camera.status;
  if (camera.status !== "up" && entry.seq) {
    entry.overlay.textContent = `${camera.status}: showing the last frame`;
    entry.overlay.hidden = false;
  } else if (camera.status === "up" && entry.seq) {
    entry.overlay.hidden = true;
  }
}

async function pictureLoop(id, entry) {
  while (entry.alive) {
    let wait = PICTURE_PERIOD_MS;
    try {
      const response = await api(`/api/cameras/${encodeURIComponent(id)}/snapshot.jpg`, { cache: "no-store" });
      if (response.ok) {
        const seq = response.headers.get("X-Frame-Seq") || "";
        const blob = await response.blob();
        if (seq !== entry.seq && entry.alive) {
          const url = URL.createObjectURL(blob);
          entry.img.onload = () => {
            if (entry.url && entry.url !== url) URL.revokeObjectURL(entry.url);
            entry.url = url;
            entry.img.dataset.updates = String(Number(entry.img.dataset.updates) + 1);
          };
          entry.img.src = url;
          entry.img.dataset.seq = seq;
          entry.seq = seq;
          if (entry.tile.dataset.status === "up") entry.overlay.hidden = true;
        }
      } else {
        wait = RETRY_MS;
      }
    } catch (e) {
      wait = RETRY_MS;
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

async function refresh() {
  try {
    const response = await api("/api/cameras", { cache: "no-store" });
    $("connection").hidden = true;
    if (!response.ok) {
      $("summary").textContent = await errorText(response);
      return;
    }
    const { cameras } = await response.json();
    const seen = new Set();
    for (const camera of cameras) {
      seen.add(camera.id);
      let entry = tiles.get(camera.id);
      if (!entry) {
        entry = makeTile(camera.id);
        tiles.set(camera.id, entry);
      }
      update(entry, camera);
    }
    for (const [id, entry] of tiles) {
      if (!seen.has(id)) dropTile(id, entry);
    }
    const up = cameras.filter((c) => c.status === "up").length;
    $("summary").textContent = `${cameras.length} camera${cameras.length === 1 ? "" : "s"}, ${up} up`;
    $("empty").hidden = cameras.length > 0;
  } catch (e) {
    $("connection").hidden = false;
  }
}

function dropTile(id, entry) {
  entry.alive = false;
  if (entry.url) URL.revokeObjectURL(entry.url);
  entry.tile.remove();
  tiles.delete(id);
}

async function removeCamera(id, button) {
  button.disabled = true;
  const response = await api(`/api/cameras/${encodeURIComponent(id)}`, { method: "DELETE" });
  if (response.ok || response.status === 404) {
    const entry = tiles.get(id);
    if (entry) dropTile(id, entry);
  } else {
    button.disabled = false;
    showMessage(`could not remove ${id}: ${await errorText(response)}`, true);
  }
  refresh();
}

function showMessage(text, isError) {
  const message = $("add-message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}

$("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { id: $("add-id").value.trim(), uri: $("add-uri").value.trim() };
  const maxPoses = $("add-max-poses").value;
  if (maxPoses) body.max_poses = Number(maxPoses);
  try {
    const response = await api("/api/cameras", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (response.status === 201) {
      showMessage(`added ${body.id}`, false);
      $("add-form").reset();
    } else {
      showMessage(await errorText(response), true);
    }
  } catch (e) {
    showMessage("the server did not answer", true);
  }
  refresh();
});

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("blazestream-token", token);
  $("token-form").hidden = true;
  refresh();
});

refresh();
setInterval(refresh, LIST_PERIOD_MS);
