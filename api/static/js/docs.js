// /docs: Swagger UI from the vendored copy (api/static/vendor/swagger-ui), so it works offline.
window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
