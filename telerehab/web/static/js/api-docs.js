// Starts Swagger UI on the app's own OpenAPI document (kept out of the page: CSP forbids inline scripts).
const root = document.getElementById("swagger-ui");
window.SwaggerUIBundle({ url: root.dataset.specUrl, domNode: root, deepLinking: true });
