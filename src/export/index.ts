/**
 * Export for deployment: a model as an ONNX file written from the module
 * tree, and a static page that runs it in the browser with onnxruntime-web.
 */
export {
  exportOnnx,
  classifierOutputs,
  ONNX_IR_VERSION,
  ONNX_NAMES,
  ONNX_OPSET,
  type OnnxExport,
  type OnnxExportOptions,
} from './onnx.js';
export { decodeModel, encodeModel, type ModelMessage } from './onnx-proto.js';
export { readModelFile, type ModelFile, type ModelFileOptions } from './model-file.js';
export { exportModel, type ExportResult } from './export.js';
export { EXPORT_SETTINGS, resolveExportConfig, type ExportConfig } from './settings.js';
export { linearHead, writeWebPage, ORT_FILES, PAGE_SOURCE, type PageConfig } from './web.js';
export {
  createStaticServer,
  MIME_TYPES,
  resolveRequestPath,
  resolveServeConfig,
  serveFolder,
  SERVE_SETTINGS,
  type RunningServer,
  type ServeConfig,
} from './serve.js';
