// Passkeys (WebAuthn) for the sign-in and account pages. The pages work without it: the
// passkey forms stay hidden unless this script runs and the browser offers WebAuthn.
//
// A form with data-passkey="sign-in" or data-passkey="register" names, in data-options, the
// URL that starts the ceremony (POSTed with the form's CSRF fields, answered with the
// options for navigator.credentials.* and a ceremony id). The authenticator's answer is put
// into the form's hidden "ceremony" and "credential" fields and the form is submitted, so
// the server answers it like any other form (CSRF-checked, a page or a redirect).
(function () {
  'use strict';

  var dec = function (s) {
    var b = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
    var out = new Uint8Array(b.length);
    for (var i = 0; i < b.length; i++) out[i] = b.charCodeAt(i);
    return out;
  };
  var enc = function (buf) {
    var bytes = new Uint8Array(buf);
    var s = '';
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  };

  function startCeremony(form) {
    var fields = new URLSearchParams();
    ['csrf_token', 'request'].forEach(function (name) {
      var input = form.elements[name];
      if (input) fields.append(name, input.value);
    });
    return fetch(form.dataset.options, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: fields.toString()
    }).then(function (r) {
      if (!r.ok) throw new Error('options: ' + r.status);
      return r.json();
    });
  }

  function register(form, options) {
    var o = options.publicKey;
    o.challenge = dec(o.challenge);
    o.user.id = dec(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) { c.id = dec(c.id); });
    return navigator.credentials.create({ publicKey: o }).then(function (cred) {
      return {
        id: cred.id,
        rawId: enc(cred.rawId),
        type: cred.type,
        response: {
          attestationObject: enc(cred.response.attestationObject),
          clientDataJSON: enc(cred.response.clientDataJSON),
          transports: cred.response.getTransports ? cred.response.getTransports() : undefined
        },
        clientExtensionResults: cred.getClientExtensionResults()
      };
    });
  }

  function signIn(form, options) {
    var o = options.publicKey;
    o.challenge = dec(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = dec(c.id); });
    return navigator.credentials.get({ publicKey: o }).then(function (a) {
      return {
        id: a.id,
        rawId: enc(a.rawId),
        type: a.type,
        response: {
          authenticatorData: enc(a.response.authenticatorData),
          clientDataJSON: enc(a.response.clientDataJSON),
          signature: enc(a.response.signature),
          userHandle: a.response.userHandle ? enc(a.response.userHandle) : null
        },
        clientExtensionResults: a.getClientExtensionResults()
      };
    });
  }

  function wire(form) {
    var ceremony = form.dataset.passkey === 'register' ? register : signIn;
    var status = form.querySelector('[data-passkey-status]');
    form.hidden = false;
    form.addEventListener('submit', function (event) {
      if (form.elements.credential.value) return; // the answer is in: let it go
      event.preventDefault();
      if (status) status.textContent = '';
      startCeremony(form)
        .then(function (options) {
          form.elements.ceremony.value = options.ceremony;
          return ceremony(form, options);
        })
        .then(function (credential) {
          form.elements.credential.value = JSON.stringify(credential);
          form.submit();
        })
        .catch(function () {
          if (status) status.textContent = form.dataset.failed || 'The passkey could not be used.';
        });
    });
  }

  if (!window.PublicKeyCredential || !navigator.credentials) return;
  document.querySelectorAll('form[data-passkey]').forEach(wire);
})();
