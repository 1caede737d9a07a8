// The chat page: join a room, show its history, presence and messages, and
// reconnect with exponential backoff when the connection closes.
//
// Everything users typed (nicknames, messages, room names) reaches the page
// through textContent or createTextNode, never as HTML.
"use strict";

(() => {
  const NICK_MAX = 32;
  const TEXT_MAX = 2000;
  const ROOM_PATTERN = /^[a-z0-9-]{1,32}$/;
  // Reconnect after 0.5 s, doubling up to 10 s, each wait jittered by up to -50%.
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const CLOSE_REASONS = {
    1000: "closed",
    1001: "server going away",
    1006: "connection lost",
    1008: "too slow",
    1011: "server error",
    1012: "app reloaded",
  };

  const $ = (id) => document.getElementById(id);
  const base = document.body.dataset.base || "";
  const ui = {
    joinForm: $("join-form"), nick: $("nick"), room: $("room"), joinError: $("join-error"),
    join: $("join"), chat: $("chat"), roomTitle: $("room-title"), status: $("status"),
    messages: $("messages"), composer: $("composer"), text: $("text"), send: $("send"),
    sendError: $("send-error"), members: $("members"), memberCount: $("member-count"), leave: $("leave"),
  };

  const state = {
    nick: null,
    room: null,
    socket: null,
    attempt: 0, // reconnections since the last successful join
    timer: null, // the pending reconnect
    lastId: 0, // the newest message shown, to drop duplicates
    members: [],
    lost: false, // the connection closed under us: say so when it is back
  };

  // --- validation (the server checks the same rules) ---

  function nickProblem(nick) {
    const chars = [...nick].length;
    if (chars === 0) return "Choose a nickname.";
    if (chars > NICK_MAX) return `A nickname is at most ${NICK_MAX} characters.`;
    if (/\p{Cc}/u.test(nick)) return "A nickname cannot contain control characters.";
    return null;
  }

  function roomProblem(room) {
    return ROOM_PATTERN.test(room) ? null : "A room name is 1 to 32 of a-z, 0-9 and -.";
  }

  function roomFromHash() {
    const room = decodeURIComponent(location.hash.slice(1));
    return ROOM_PATTERN.test(room) ? room : null;
  }

  // --- rendering ---

  function setStatus(kind, text) {
    ui.status.dataset.state = kind;
    ui.status.className = `status ${kind}`;
    ui.status.textContent = text;
  }

  function scrolledToBottom() {
    const list = ui.messages;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  }

  function append(item) {
    const follow = scrolledToBottom();
    ui.messages.appendChild(item);
    if (follow) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function showMessage(message) {
    if (message.id <= state.lastId) return; // already shown (history and live overlap)
    state.lastId = message.id;
    const item = document.createElement("li");
    item.className = message.nick === state.nick ? "message mine" : "message";
    item.dataset.id = String(message.id);
    const at = new Date(message.at);
    const time = document.createElement("time");
    time.dateTime = at.toISOString();
    time.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const nick = document.createElement("span");
    nick.className = "nick";
    nick.textContent = message.nick;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = message.text;
    item.append(time, nick, text);
    append(item);
  }

  function showNotice(text) {
    const item = document.createElement("li");
    item.className = "notice";
    item.textContent = text;
    append(item);
  }

  function showMembers(members) {
    state.members = members;
    ui.members.replaceChildren(...members.map((nick) => {
      const item = document.createElement("li");
      item.textContent = nick;
      if (nick === state.nick) {
        const you = document.createElement("span");
        you.className = "you";
        you.textContent = " (you)";
        item.appendChild(you);
      }
      return item;
    }));
    ui.memberCount.textContent = String(members.length);
  }

  function showSendError(text) {
    ui.sendError.textContent = text;
    clearTimeout(showSendError.timer);
    showSendError.timer = setTimeout(() => { ui.sendError.textContent = ""; }, 6000);
  }

  function setComposerEnabled(enabled) {
    ui.text.disabled = !enabled;
    ui.send.disabled = !enabled;
  }

  // --- the connection ---

  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const room = encodeURIComponent(state.room);
    return `${scheme}//${location.host}${base}/ws/${room}?nick=${encodeURIComponent(state.nick)}`;
  }

  function connect() {
    clearTimeout(state.timer);
    state.timer = null;
    setStatus("connecting", state.attempt ? `reconnecting… (attempt ${state.attempt})` : "connecting…");
    const socket = new WebSocket(socketUrl());
    state.socket = socket;
    socket.onmessage = (event) => {
      if (socket === state.socket) receive(JSON.parse(event.data));
    };
    socket.onclose = (event) => {
      if (socket !== state.socket) return; // replaced or left on purpose
      state.socket = null;
      setComposerEnabled(false);
      if (!state.lost) showNotice(`Disconnected (${CLOSE_REASONS[event.code] || `code ${event.code}`}).`);
      state.lost = true;
      scheduleReconnect(event.code);
    };
  }

  function scheduleReconnect(code) {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.attempt);
    const wait = ceiling / 2 + Math.random() * (ceiling / 2);
    state.attempt += 1;
    const why = CLOSE_REASONS[code] || `closed (${code})`;
    setStatus("waiting", `${why}: reconnecting in ${(wait / 1000).toFixed(1)} s`);
    state.timer = setTimeout(connect, wait);
  }

  function disconnect() {
    clearTimeout(state.timer);
    state.timer = null;
    const socket = state.socket;
    state.socket = null;
    if (socket) socket.close(1000, "left");
    setComposerEnabled(false);
  }

  function receive(event) {
    switch (event.type) {
      case "history":
        state.attempt = 0;
        setStatus("connected", "connected");
        setComposerEnabled(true);
        if (document.activeElement === document.body || document.activeElement === ui.join) ui.text.focus();
        event.messages.forEach(showMessage);
        showNotice(state.lost ? "Reconnected." : `You joined #${state.room} as ${state.nick}.`);
        state.lost = false;
        break;
      case "message":
        showMessage(event);
        break;
      case "presence":
        // After a reconnection people rejoin who never really left: no news.
        if (event.joined && event.joined !== state.nick && !state.members.includes(event.joined)) {
          showNotice(`${event.joined} joined`);
        }
        if (event.left) showNotice(`${event.left} left`);
        showMembers(event.members);
        break;
      case "error":
        showSendError(event.text);
        break;
      default:
        break;
    }
  }

  // --- joining, leaving, switching rooms ---

  function enter(nick, room) {
    disconnect();
    const sameRoom = room === state.room;
    state.nick = nick;
    state.room = room;
    state.attempt = 0;
    state.lost = false;
    if (!sameRoom) {
      state.lastId = 0;
      ui.messages.replaceChildren();
      showMembers([]);
    }
    ui.roomTitle.textContent = `#${room}`;
    document.title = `#${room} — Crabcat chat`;
    if (location.hash !== `#${room}`) history.replaceState(null, "", `#${room}`);
    ui.joinForm.hidden = true;
    ui.chat.hidden = false;
    connect();
  }

  ui.joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const nick = ui.nick.value.trim();
    const room = ui.room.value.trim();
    const problem = nickProblem(nick) || roomProblem(room);
    ui.joinError.textContent = problem || "";
    if (problem) return;
    try { localStorage.setItem("crabcat-chat-nick", nick); } catch (_) { /* private mode */ }
    enter(nick, room);
  });

  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.text.value;
    if (!text.trim()) return;
    if ([...text.trim()].length > TEXT_MAX) {
      showSendError(`A message is at most ${TEXT_MAX} characters.`);
      return;
    }
    if (!state.socket || state.socket.readyState !== WebSocket.OPEN) {
      showSendError("Not connected: the message was not sent.");
      return;
    }
    state.socket.send(JSON.stringify({ type: "message", text }));
    ui.text.value = "";
  });

  ui.leave.addEventListener("click", () => {
    disconnect();
    setStatus("offline", "not connected");
    ui.chat.hidden = true;
    ui.joinForm.hidden = false;
    ui.roomTitle.textContent = "";
  });

  window.addEventListener("hashchange", () => {
    const room = roomFromHash();
    if (room && state.nick && room !== state.room) enter(state.nick, room);
  });

  // Back online: try at once instead of waiting out the backoff.
  window.addEventListener("online", () => {
    if (state.timer) connect();
  });

  // --- start ---

  ui.room.value = roomFromHash() || "lobby";
  try { ui.nick.value = localStorage.getItem("crabcat-chat-nick") || ""; } catch (_) { /* private mode */ }
  ui.nick.focus();
})();
