{
  "variables": {
    "libtorch%": "<!(node -p \"process.env.LIBTORCH || ''\")",
    "c10d%": "<!(node -p \"(process.env.MOCO_CXR_C10D || (process.env.LIBTORCH ? '0' : '1')) === '1' ? 'on' : 'off'\")",
    "nccl%": "<!(node -p \"process.env.MOCO_CXR_NCCL === '1' ? 'on' : 'off'\")"
  },
  "targets": [
    {
      "target_name": "moco_torch",
      "sources": [
        "native/addon.cc",
        "native/tensor.cc",
        "native/dispatch.cc",
        "native/runtime.cc",
        "native/distributed.cc",
        "native/grad_reducer.cc",
        "native/augment.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": ["NAPI_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-frtti", "-fexceptions", "-O2", "-Wno-unused-parameter"],
      "conditions": [
        ["c10d=='on'", {"defines": ["MOCO_C10D", "USE_C10D_GLOO"]}],
        [
          "c10d=='on' and libtorch==''",
          {
            "libraries": ["-lgloo"],
            "include_dirs": ["native/shim"]
          }
        ],
        ["nccl=='on'", {"defines": ["MOCO_C10D_NCCL", "USE_C10D_NCCL"]}],
        [
          "libtorch==''",
          {
            "include_dirs": ["/usr/include/torch/csrc/api/include"],
            "libraries": ["-ltorch", "-ltorch_cpu", "-lc10"]
          },
          {
            "include_dirs": ["<(libtorch)/include", "<(libtorch)/include/torch/csrc/api/include"],
            "libraries": [
              "-L<(libtorch)/lib",
              "-Wl,-rpath,<(libtorch)/lib",
              "-Wl,--no-as-needed",
              "-ltorch",
              "-ltorch_cpu",
              "-lc10",
              "-Wl,--as-needed"
            ]
          }
        ]
      ]
    }
  ]
}
