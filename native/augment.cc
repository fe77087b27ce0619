// One fused pass for the loader's augmentation of grey uint8 image batches:
// per image, an affine map (mirror, rotation, crop window) sampled bilinearly
// with zero fill, scaled and shifted per output channel, written straight into
// the float [B, C, h, w] result. Composed from ATen ops the same work takes a
// float copy of the batch, a sampling grid of 2·h·w floats per image,
// grid_sample and a normalizing op, five passes over memory; here the sampling
// coordinates advance along each row and the pixels stay uint8 until read.
// The arithmetic is grid_sample's (bilinear, zeros padding, align_corners =
// false), so the result matches that composition to float rounding.
#include "common.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace moco {

namespace {

std::vector<float> ReadFloats(Napi::Env env, const Napi::Value& value, size_t expected, const char* what) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    ThrowType(env, std::string("affineSampleGrey: ") + what + " must be a Float32Array");
  }
  Napi::Float32Array array = value.As<Napi::Float32Array>();
  if (array.ElementLength() != expected) {
    throw Napi::RangeError::New(env, std::string("affineSampleGrey: ") + what + " holds " +
                                         std::to_string(array.ElementLength()) + " values, expected " +
                                         std::to_string(expected));
  }
  return std::vector<float>(array.Data(), array.Data() + expected);
}

// affineSampleGrey(images uint8 [B, 1, H, W], theta Float32Array [B·6], outHeight, outWidth,
//                  scale Float32Array [C], bias Float32Array [C][, out]) -> float [B, C, outHeight, outWidth]
// With `out` (a contiguous float CPU tensor of that shape) the result is written there: a loader
// that reuses its buffers spares the allocator fresh pages, whose faults cost more than the pass.
// theta holds affine_grid's matrices (output window's normalized coordinates to the source's);
// output channel c is sample · scale[c] + bias[c].
Napi::Value AffineSampleGrey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (info.Length() < 6 || info.Length() > 7 || !info[2].IsNumber() || !info[3].IsNumber()) {
      ThrowType(env, "affineSampleGrey(images, theta, outHeight, outWidth, scale, bias[, out])");
    }
    const at::Tensor& images = TensorHandle::FromValue(info[0], "affineSampleGrey: images");
    if (images.scalar_type() != at::kByte || images.dim() != 4 || images.size(1) != 1 || !images.device().is_cpu()) {
      ThrowType(env, "affineSampleGrey: images must be a uint8 CPU tensor [B, 1, H, W]");
    }
    const int64_t batch = images.size(0);
    const int64_t height = images.size(2);
    const int64_t width = images.size(3);
    const int64_t outHeight = info[2].As<Napi::Number>().Int64Value();
    const int64_t outWidth = info[3].As<Napi::Number>().Int64Value();
    if (outHeight < 1 || outWidth < 1) throw Napi::RangeError::New(env, "affineSampleGrey: output sides must be positive");
    const std::vector<float> theta = ReadFloats(env, info[1], static_cast<size_t>(batch * 6), "theta");
    if (!info[4].IsTypedArray()) ThrowType(env, "affineSampleGrey: scale must be a Float32Array");
    const size_t channels = info[4].As<Napi::TypedArray>().ElementLength();
    if (channels < 1) throw Napi::RangeError::New(env, "affineSampleGrey: at least one output channel");
    const std::vector<float> scale = ReadFloats(env, info[4], channels, "scale");
    const std::vector<float> bias = ReadFloats(env, info[5], channels, "bias");

    const at::Tensor source = images.contiguous();
    const std::vector<int64_t> shape = {batch, static_cast<int64_t>(channels), outHeight, outWidth};
    at::Tensor out;
    if (info.Length() == 7 && !info[6].IsUndefined()) {
      out = TensorHandle::FromValue(info[6], "affineSampleGrey: out");
      if (out.scalar_type() != at::kFloat || !out.device().is_cpu() || !out.is_contiguous() || out.sizes() != shape) {
        ThrowType(env, "affineSampleGrey: out must be a contiguous float CPU tensor of the result's shape");
      }
    } else {
      out = at::empty(shape, at::kFloat);
    }
    const uint8_t* pixels = source.data_ptr<uint8_t>();
    float* result = out.data_ptr<float>();
    const int64_t plane = outHeight * outWidth;
    // The normalized coordinate of each output column, as affine_grid computes it.
    std::vector<float> xs(static_cast<size_t>(outWidth));
    for (int64_t j = 0; j < outWidth; ++j) xs[j] = static_cast<float>((2.0 * j + 1.0) / outWidth - 1.0);
    const float fw = static_cast<float>(width);
    const float fh = static_cast<float>(height);

    // One task per output row; a row of 224 is about 2 µs of work, so grains of a few rows.
    at::parallel_for(0, batch * outHeight, 16, [&](int64_t begin, int64_t end) {
      std::vector<float> row(static_cast<size_t>(outWidth));
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / outHeight;
        const int64_t i = r % outHeight;
        const float* t = theta.data() + b * 6;
        const uint8_t* image = pixels + b * height * width;
        const float y = static_cast<float>((2.0 * i + 1.0) / outHeight - 1.0);
        const float rowX = t[1] * y;
        const float rowY = t[4] * y;
        for (int64_t j = 0; j < outWidth; ++j) {
          const float gx = (t[0] * xs[j] + t[2]) + rowX;
          const float gy = (t[3] * xs[j] + t[5]) + rowY;
          // grid_sampler_unnormalize with align_corners = false; zeros padding does not clip.
          const float ix = ((gx + 1.f) * fw - 1.f) / 2.f;
          const float iy = ((gy + 1.f) * fh - 1.f) / 2.f;
          const float x0f = std::floor(ix);
          const float y0f = std::floor(iy);
          const int64_t x0 = static_cast<int64_t>(x0f);
          const int64_t y0 = static_cast<int64_t>(y0f);
          const float east = ix - x0f;
          const float west = (x0f + 1.f) - ix;
          const float south = iy - y0f;
          const float north = (y0f + 1.f) - iy;
          float value = 0.f;
          if (x0 >= 0 && y0 >= 0 && x0 + 1 < width && y0 + 1 < height) {
            const uint8_t* p = image + y0 * width + x0;
            value = p[0] * (west * north) + p[1] * (east * north) + p[width] * (west * south) +
                    p[width + 1] * (east * south);
          } else {
            const auto at = [&](int64_t yy, int64_t xx) -> float {
              return xx >= 0 && yy >= 0 && xx < width && yy < height ? image[yy * width + xx] : 0.f;
            };
            value = at(y0, x0) * (west * north) + at(y0, x0 + 1) * (east * north) +
                    at(y0 + 1, x0) * (west * south) + at(y0 + 1, x0 + 1) * (east * south);
          }
          row[j] = value;
        }
        for (size_t c = 0; c < channels; ++c) {
          float* dst = result + (b * static_cast<int64_t>(channels) + static_cast<int64_t>(c)) * plane + i * outWidth;
          const float k = scale[c];
          const float d = bias[c];
          for (int64_t j = 0; j < outWidth; ++j) dst[j] = row[j] * k + d;
        }
      }
    });
    return TensorHandle::Wrap(env, std::move(out));
  });
}

// storageUseCount(tensor): how many tensors (views included) share the tensor's storage, 0 without one.
// A buffer is free to be written again once its own tensor is the only user.
Napi::Value StorageUseCount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (info.Length() != 1) ThrowType(env, "storageUseCount(tensor)");
    const at::Tensor& t = TensorHandle::FromValue(info[0], "storageUseCount: tensor");
    return Napi::Number::New(env, t.has_storage() ? static_cast<double>(t.storage().use_count()) : 0.0);
  });
}

}  // namespace

void InitAugment(Napi::Env env, Napi::Object exports) {
  exports.Set("affineSampleGrey", Napi::Function::New(env, AffineSampleGrey, "affineSampleGrey"));
  exports.Set("storageUseCount", Napi::Function::New(env, StorageUseCount, "storageUseCount"));
}

}  // namespace moco
