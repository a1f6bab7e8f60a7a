// Passkeys (WebAuthn) for the staff app: register one, or sign in with one. No inline script (CSP).
// A button carries data-passkey="register|login", data-options (URL), data-finish (URL), data-csrf and
// data-status (the id of the element that shows what happened). The server sends WebAuthn options as JSON
// (binary fields base64url) and takes the credential back the same way, in a form field.
(function () {
  "use strict";

  function toBuffer(text) {
    var s = text.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // Sent as a form (the credential as one JSON field), like every other post of the staff app.
  async function post(url, csrf, fields) {
    var form = new URLSearchParams();
    Object.keys(fields || {}).forEach(function (name) {
      var value = fields[name];
      form.append(name, typeof value === "string" ? value : JSON.stringify(value));
    });
    var answer = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Accept": "application/json" },
      body: form,
    });
    var data = await answer.json().catch(function () { return {}; });
    if (!answer.ok) { throw new Error(data.error || "The passkey did not work. Try again."); }
    return data;
  }

  function descriptors(list) {
    return (list || []).map(function (d) { return Object.assign({}, d, { id: toBuffer(d.id) }); });
  }

  async function register(button) {
    var options = await post(button.dataset.options, button.dataset.csrf);
    options.challenge = toBuffer(options.challenge);
    options.user.id = toBuffer(options.user.id);
    options.excludeCredentials = descriptors(options.excludeCredentials);
    var made = await navigator.credentials.create({ publicKey: options });
    var label = document.getElementById(button.dataset.label || "");
    return post(button.dataset.finish, button.dataset.csrf, {
      label: label ? label.value : "",
      credential: {
        id: made.id,
        rawId: toText(made.rawId),
        type: made.type,
        authenticatorAttachment: made.authenticatorAttachment,
        clientExtensionResults: made.getClientExtensionResults(),
        response: {
          clientDataJSON: toText(made.response.clientDataJSON),
          attestationObject: toText(made.response.attestationObject),
          transports: made.response.getTransports ? made.response.getTransports() : [],
        },
      },
    });
  }

  async function signIn(button) {
    var options = await post(button.dataset.options, button.dataset.csrf);
    options.challenge = toBuffer(options.challenge);
    options.allowCredentials = descriptors(options.allowCredentials);
    var got = await navigator.credentials.get({ publicKey: options });
    return post(button.dataset.finish, button.dataset.csrf, {
      credential: {
        id: got.id,
        rawId: toText(got.rawId),
        type: got.type,
        authenticatorAttachment: got.authenticatorAttachment,
        clientExtensionResults: got.getClientExtensionResults(),
        response: {
          clientDataJSON: toText(got.response.clientDataJSON),
          authenticatorData: toText(got.response.authenticatorData),
          signature: toText(got.response.signature),
          userHandle: got.response.userHandle ? toText(got.response.userHandle) : null,
        },
      },
    });
  }

  function start(button) {
    var status = document.getElementById(button.dataset.status || "");
    if (!window.PublicKeyCredential) {
      if (status) { status.textContent = "This browser cannot use passkeys."; }
      button.disabled = true;
      return;
    }
    button.addEventListener("click", async function () {
      button.disabled = true;
      if (status) { status.textContent = "Waiting for your passkey…"; }
      try {
        var done = await (button.dataset.passkey === "register" ? register(button) : signIn(button));
        window.location.assign(done.redirect || "/");
      } catch (error) {
        if (status) { status.textContent = error.name === "NotAllowedError" ? "The passkey was cancelled or timed out." : error.message; }
        button.disabled = false;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-passkey]").forEach(start);
  });
})();
