{
  # Built by scripts/postinstall.mjs (npm install) or `npm run build:native`; links the system oneDNN
  # (Debian libdnnl-dev). oneDNN's Debian build uses GNU OpenMP, so our own loops use OpenMP too:
  # one threading runtime (libgomp) in the process.
  "targets": [
    {
      "target_name": "tfjs_native",
      "sources": [
        "src/addon.cc",
        "src/conv.cc",
        "src/matmul.cc",
        "src/elementwise.cc",
        "src/reduce.cc",
        "src/shape_ops.cc",
        "src/resize.cc",
        "src/norm.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-march=native", "-fopenmp", "-fexceptions", "-fno-math-errno", "-fno-trapping-math", "-Wno-unused-parameter"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-ldnnl", "-lgomp"]
    }
  ]
}
