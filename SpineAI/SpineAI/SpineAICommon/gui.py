"""Qt helpers: background CLI runner, dependency installer, error display."""

import logging

import qt
import slicer

from SpineAILib import slicer_bridge


def showError(message, exc=None):
    """A message box with the error; the traceback goes to the details and the log, never
    only to the console."""
    import traceback

    details = traceback.format_exc() if exc is not None else ""
    logging.error(message + ("\n" + details if details else ""))
    slicer.util.errorDisplay(message, detailedText=details or None)


def ensureDependencies(required=("torch", "monai", "tqdm", "scipy")):
    """Install what a task needs on first use, after asking. torch goes through the PyTorch
    extension (it picks the right CUDA/CPU build); the rest through pip as
    SpineAILib.slicer_bridge plans it (--no-deps where a dependency could replace Slicer's numpy,
    SimpleITK or vtk). Returns True when all are present."""
    from SpineAILib.info import missing_packages

    missing = missing_packages(tuple(required))
    if not missing:
        return True
    plan = slicer_bridge.install_plan(missing)
    text = "SpineAI needs these Python packages, which are not installed yet:\n\n  " + ", ".join(missing)
    text += "\n\nInstall them now? This can take several minutes."
    if not slicer.util.confirmOkCancelDisplay(text, "SpineAI: install dependencies"):
        return False
    with slicer.util.WaitCursor():
        if plan["torch"]:
            try:
                import PyTorchUtils
            except ImportError:
                slicer.util.errorDisplay("Install the 'PyTorch' extension from the Extensions Manager first, then restart Slicer.")
                return False
            torchLogic = PyTorchUtils.PyTorchUtilsLogic()
            if not torchLogic.torchInstalled() and torchLogic.installTorch(askConfirmation=False) is None:
                slicer.util.errorDisplay("PyTorch could not be installed. See the PyTorch module for options.")
                return False
        for requirement in plan["pip"]:
            slicer.util.pip_install(requirement)
    return not missing_packages(tuple(required))


class BackgroundCliRunner:
    """Run ``spineai <command> ...`` in PythonSlicer as a QProcess: the GUI stays responsive,
    progress lines drive a progress bar, Cancel kills the process.

    Callbacks: onProgress(fraction, message), onFinished(ok, exitCode, outputText).
    """

    def __init__(self, onProgress=None, onFinished=None):
        self.onProgress = onProgress
        self.onFinished = onFinished
        self.process = None
        self.output = []
        self.cancelled = False

    @property
    def running(self):
        return self.process is not None and self.process.state() != qt.QProcess.NotRunning

    def start(self, command, args, device="auto"):
        if self.running:
            raise RuntimeError("A SpineAI computation is already running.")
        argv = slicer_bridge.cli_command(self._pythonSlicer(), command, list(args), device)
        env = qt.QProcessEnvironment()
        for key, value in slicer_bridge.cli_environment().items():
            env.insert(key, value)
        self.output, self.cancelled = [], False
        self.process = qt.QProcess()
        self.process.setProcessEnvironment(env)
        self.process.setProcessChannelMode(qt.QProcess.MergedChannels)
        self.process.connect("readyReadStandardOutput()", self._readOutput)
        self.process.connect("finished(int)", self._finished)
        logging.info("SpineAI: " + " ".join(argv))
        self.process.start(argv[0], argv[1:])

    def cancel(self):
        if self.running:
            self.cancelled = True
            self.process.kill()

    @staticmethod
    def _pythonSlicer():
        import shutil

        return shutil.which("PythonSlicer") or "PythonSlicer"

    def _readOutput(self):
        data = bytes(self.process.readAllStandardOutput()).decode("utf-8", errors="replace")
        for line in data.splitlines():
            parsed = slicer_bridge.parse_machine_progress(line)
            if parsed is not None:
                if self.onProgress:
                    self.onProgress(*parsed)
            elif line.strip():
                self.output.append(line)
                logging.info(line)

    def _finished(self, exitCode):
        self._readOutput()
        ok = exitCode == 0 and not self.cancelled
        if self.onFinished:
            self.onFinished(ok, exitCode, "\n".join(self.output))


DEVICES = ["auto", "cpu", "cuda", "mps"]


def exportVolume(volumeNode, workDir, fileName="input.nrrd"):
    """Write a volume node (geometry included) for the background process; returns the path."""
    import os

    path = os.path.join(workDir, fileName)
    if not slicer.util.saveNode(volumeNode, path, {"useCompression": 0}):
        raise OSError(f"Could not write {path}")
    return path


class TaskWidgetMixin:
    """Shared Apply/Cancel/progress behaviour of the SpineAI task widgets.

    The widget's .ui must have inputSelector, deviceComboBox, applyButton, cancelButton,
    progressBar and statusLabel. The widget implements ``checkAndStart()`` (validate, then call
    ``startTask``) and ``onTaskSucceeded(output)``.
    """

    def setupTaskControls(self):
        self.runner = BackgroundCliRunner(self.onProgress, self.onRunnerFinished)
        self.ui.deviceComboBox.addItems(DEVICES)
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.cancelButton.connect("clicked(bool)", self.runner.cancel)
        self.ui.inputSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateButtons)
        self.ui.cancelButton.enabled = False
        self.ui.progressBar.setValue(0)
        self.updateButtons()

    def updateButtons(self, *_):
        self.ui.applyButton.enabled = self.ui.inputSelector.currentNode() is not None and not self.runner.running

    def onApply(self):
        try:
            self.checkAndStart()
        except ValueError as exc:  # bad input: the message says what is wrong and what is expected
            showError(str(exc))
        except Exception as exc:  # noqa: BLE001 - never a traceback-only failure
            showError(f"Could not start: {exc}", exc)
            self.updateButtons()

    def startTask(self, command, args, message):
        self.ui.applyButton.enabled = False
        self.ui.cancelButton.enabled = True
        self.ui.progressBar.setValue(0)
        self.ui.statusLabel.text = message
        self.runner.start(command, args, self.ui.deviceComboBox.currentText)

    def onProgress(self, fraction, message):
        self.ui.progressBar.setValue(int(round(100 * fraction)))
        self.ui.statusLabel.text = message

    def onRunnerFinished(self, ok, exitCode, output):
        self.ui.cancelButton.enabled = False
        self.updateButtons()
        if self.runner.cancelled:
            self.ui.statusLabel.text = "Cancelled."
            return
        if not ok:
            self.ui.statusLabel.text = "Failed."
            showError(f"{self.moduleName} failed (exit code {exitCode}).\n\n{output[-2000:]}")
            return
        try:
            self.onTaskSucceeded(output)
        except Exception as exc:  # noqa: BLE001
            showError(f"Could not read the result: {exc}", exc)
