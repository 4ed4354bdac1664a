// Passkeys (WebAuthn) for the sign-in and account pages. The pages work without it: the
// passkey forms stay hidden unless this script runs and the browser offers WebAuthn.
//
// A form with data-passkey="sign-in" or data-passkey="register" names, in data-options, the
// URL that starts the ceremony (POSTed with the form's CSRF fields, answered with the
// options for navigator.credentials.* and a ceremony id). The authenticator's answer is put
// into the form's hidden "ceremony" and "credential" fields and the form is submitted, so
// the server answers it like any other form (CSRF-checked, a page or a redirect).
//
// A sign-in form with data-passkey-autofill also starts a conditional request (WebAuthn
// Level 3 conditional mediation) when the browser offers it: the user's passkeys appear in
// the autofill of the e-mail field (autocomplete="username webauthn"), and picking one signs
// in. Pressing the button aborts that request and asks with the browser's own prompt.
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

  function signIn(form, options, extra) {
    var o = options.publicKey;
    o.challenge = dec(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = dec(c.id); });
    var request = { publicKey: o };
    if (extra) {
      request.mediation = extra.mediation;
      request.signal = extra.signal;
    }
    return navigator.credentials.get(request).then(function (a) {
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

  function answer(form, credential) {
    form.elements.credential.value = JSON.stringify(credential);
    form.submit();
  }

  // The conditional request of a sign-in form; resolves to its AbortController, or to null
  // when the browser has no conditional mediation.
  function autofill(form) {
    var P = window.PublicKeyCredential;
    if (!P.isConditionalMediationAvailable) return Promise.resolve(null);
    return P.isConditionalMediationAvailable().then(function (available) {
      if (!available) return null;
      var abort = new AbortController();
      startCeremony(form)
        .then(function (options) {
          if (abort.signal.aborted) return null;
          var ceremony = options.ceremony;
          return signIn(form, options, { mediation: 'conditional', signal: abort.signal })
            .then(function (credential) {
              form.elements.ceremony.value = ceremony;
              answer(form, credential);
            });
        })
        .catch(function () { /* aborted for the button, or no passkey picked */ });
      return abort;
    }).catch(function () { return null; });
  }

  function wire(form) {
    var ceremony = form.dataset.passkey === 'register' ? register : signIn;
    var status = form.querySelector('[data-passkey-status]');
    var pending = 'passkeyAutofill' in form.dataset ? autofill(form) : Promise.resolve(null);
    form.hidden = false;
    form.addEventListener('submit', function (event) {
      if (form.elements.credential.value) return; // the answer is in: let it go
      event.preventDefault();
      if (status) status.textContent = '';
      pending
        .then(function (abort) {
          if (abort) abort.abort();
          pending = Promise.resolve(null);
          return startCeremony(form);
        })
        .then(function (options) {
          form.elements.ceremony.value = options.ceremony;
          return ceremony(form, options);
        })
        .then(function (credential) { answer(form, credential); })
        .catch(function () {
          if (status) status.textContent = form.dataset.failed || 'The passkey could not be used.';
        });
    });
  }

  if (!window.PublicKeyCredential || !navigator.credentials) return;
  document.querySelectorAll('form[data-passkey]').forEach(wire);
})();
