"""Native (C++) sources edgekit compiles for devices: `lite_runner.cc`, the Paddle Lite runner
(built by edgekit.toolchains.native_runner)."""
