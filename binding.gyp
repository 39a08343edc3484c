{
  "targets": [
    {
      "target_name": "tapswitch_native",
      "sources": ["native/tapswitch.c", "native/visit.c"],
      "cflags_c": ["-std=gnu11"],
      "defines": ["NAPI_VERSION=8"],
      "configurations": {
        "Release": {
          "cflags!": ["-O3"],
          "cflags": ["-O2", "-Wall"]
        },
        "Debug": {
          "cflags": ["-Wall"]
        }
      }
    }
  ]
}
