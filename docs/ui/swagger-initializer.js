// Starts Swagger UI on the API's own document. A separate file, not an inline
// script, so the page's Content-Security-Policy can allow scripts from this
// server only.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.yaml",
    dom_id: "#swagger-ui",
    // The default validator shows a badge fetched from validator.swagger.io.
    validatorUrl: null,
    // Never load another document named in the page's query string.
    queryConfigEnabled: false,
    // Keep the bearer token across reloads, and open every call ready to try.
    persistAuthorization: true,
    tryItOutEnabled: true,
    deepLinking: true,
    displayRequestDuration: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
