// The package ships JavaScript only; this is the part of its surface the DICOM reader uses.
declare module 'jpeg-lossless-decoder-js' {
  export class Decoder {
    constructor(buffer?: ArrayBuffer, numBytes?: number);
    /** Decodes one JPEG Lossless frame; `numBytes` is bytes per sample (1 or 2). */
    decode(buffer: ArrayBuffer, offset?: number, length?: number, numBytes?: number): Uint8Array | Uint16Array;
  }
}
