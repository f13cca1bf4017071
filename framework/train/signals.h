// Stop requests: SIGTERM, SIGUSR1 (Slurm's pre-emption warning) or SIGINT set a flag the trainer checks
// at each step boundary (all ranks agree, checkpoint, exit 75). A second SIGINT exits at once (130).
#pragma once

namespace gantry {

void install_stop_handlers();
bool stop_requested();
int stop_signal();  // the first signal received, 0 if none
// Forgets a stop request (a run started again in the same process, e.g. in-process tests).
void clear_stop_request();

}  // namespace gantry
