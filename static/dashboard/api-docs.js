// Starts Swagger UI on the API's documentation page (templates/api/docs.html). A static
// file, not an inline script, so that the site's Content-Security-Policy can refuse every
// inline script. The page's session authenticates "Try it out"; calls that write carry
// the CSRF token, as the dashboard's own forms do.
"use strict";
(() => {
  const root = document.getElementById("swagger-ui");
  const {schemaUrl, csrfHeader, csrfToken} = root.dataset;
  window.ui = SwaggerUIBundle({
    url: schemaUrl,
    domNode: root,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor: (request) => {
      if (request.method && request.method.toUpperCase() !== "GET") {
        request.headers[csrfHeader] = csrfToken;
      }
      return request;
    },
  });
})();
