// Starts Swagger UI on /api/docs. A file, not an inline script, so the page keeps the site's
// Content-Security-Policy (script-src 'self'); the OpenAPI URL comes from the page's data attribute.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    syntaxHighlight: false, // its colours on the dark code blocks are too faint to read (axe color-contrast)
    deepLinking: false, // a link inside each operation's toggle button is a control nested in a control (axe)
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    onComplete: function () {
      // The servers list has no label of its own: name it for screen readers.
      var servers = document.getElementById("servers");
      if (servers) servers.setAttribute("aria-label", "Server the requests go to");
    },
  });
  // Code blocks that scroll sideways take the keyboard focus, so they can be scrolled without a mouse.
  new MutationObserver(function () {
    root.querySelectorAll("pre:not([tabindex]), .highlight-code > .microlight:not([tabindex])").forEach(function (el) {
      el.setAttribute("tabindex", "0");
    });
  }).observe(root, { childList: true, subtree: true });
})();
