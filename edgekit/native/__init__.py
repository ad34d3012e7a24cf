"""edgekit's native Paddle Lite runner: `lite_runner.cc` (C++, light API; compiled per arch by
edgekit.toolchains.native_runner) and `runner.py` (the stream it speaks, the emulated ARM device's command)."""
