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
export {
  EXPORT_SETTINGS,
  SERVE_SETTINGS,
  resolveExportConfig,
  resolveServeConfig,
  type ExportConfig,
  type ServeConfig,
} from './settings.js';
export { linearHead, writeWebPage, ORT_FILES, PAGE_SOURCE, type PageConfig } from './web.js';
export { createStaticServer, MIME_TYPES, resolveRequestPath, serveFolder, type RunningServer } from './serve.js';
