// `hvaccel restore FILE ...` and `hvaccel snapshot inspect|diff ...`.
#pragma once

int cmd_restore(int argc, char** argv);
int cmd_snapshot(int argc, char** argv);
