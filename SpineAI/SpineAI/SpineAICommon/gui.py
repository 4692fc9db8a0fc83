"""Qt helpers: background CLI runner with Cancel, dependency installer, error display, and the
Apply/Cancel/progress behaviour every task widget shares.

SpineAILib is imported inside the functions (never at load), so this file loads on any Slicer and
a module on an unsupported one can still say why it cannot run.
"""

import logging

import qt
import slicer


def showError(message, exc=None):
    """A message box with the error; the traceback goes to the details and the log, never
    only to the console."""
    import traceback

    details = traceback.format_exc() if exc is not None else ""
    logging.error(message + ("\n" + details if details else ""))
    slicer.util.errorDisplay(message, detailedText=details or None)


def setupUnsupported(widget):
    """The module panel on a Slicer that cannot run SpineAI: the reason, nothing else."""
    from SpineAICommon.compat import UNSUPPORTED

    label = qt.QLabel(UNSUPPORTED)
    label.wordWrap = True
    widget.layout.addWidget(label)
    widget.layout.addStretch(1)


def ensureDependencies(required=("torch", "monai", "tqdm", "scipy")):
    """Install what a task needs on first use, after asking; versions are compared with the
    ranges SpineAI needs (SpineAILib.slicer_bridge.SLICER_REQUIREMENTS), not only "importable".
    torch goes through the PyTorch extension (it picks the CUDA/CPU build) with the version range
    MONAI needs; the rest through pip (--no-deps where a dependency could replace Slicer's
    numpy, SimpleITK or vtk). Returns True when everything is in range."""
    from SpineAILib import slicer_bridge

    problems = slicer_bridge.requirement_problems(tuple(required))
    if not problems:
        return True
    oldTorch = [p for p in problems if p[0] == "torch" and p[1] is not None]
    if oldTorch:
        # Replacing a torch other extensions may use is the user's decision, in the PyTorch module.
        slicer.util.errorDisplay(
            "SpineAI needs a newer PyTorch:\n\n" + slicer_bridge.describe_problems(oldTorch)
            + "\n\nUpdate it in the 'PyTorch Utils' module (Uninstall, then Install), restart Slicer and try again.",
            windowTitle="SpineAI: PyTorch too old")
        return False
    plan = slicer_bridge.install_plan(problems)
    text = ("SpineAI needs these Python packages:\n\n" + slicer_bridge.describe_problems(problems)
            + "\n\nInstall them now? This can take several minutes.")
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
            if torchLogic.installTorch(askConfirmation=False, torchVersionRequirement=plan["torch"][0]) is None:
                slicer.util.errorDisplay("PyTorch could not be installed. See the PyTorch Utils module for options.")
                return False
        for requirement in plan["pip"]:
            slicer.util.pip_install(requirement)
    remaining = slicer_bridge.requirement_problems(tuple(required))
    if remaining:
        slicer.util.errorDisplay("These packages are still missing or out of range:\n\n"
                                 + slicer_bridge.describe_problems(remaining))
    return not remaining


class BackgroundCliRunner:
    """Run ``spineai <command> ...`` in PythonSlicer as a QProcess: the GUI stays responsive,
    progress lines drive a progress bar, Cancel kills the whole process tree (PythonSlicer is a
    launcher; its python-real child does the work), and the run's temporary folder is deleted
    when it ends, however it ends, once the result has been read.

    Callbacks: onProgress(fraction, message), onFinished(ok, exitCode, outputText); the work
    folder is deleted after onFinished returns.
    """

    def __init__(self, onProgress=None, onFinished=None):
        self.onProgress = onProgress
        self.onFinished = onFinished
        self.process = None
        self.output = []
        self.cancelled = False
        self.workDir = None

    @property
    def running(self):
        return self.process is not None and self.process.state() != qt.QProcess.NotRunning

    def start(self, command, args, device="auto", workDir=None):
        from SpineAILib import slicer_bridge

        if self.running:
            raise RuntimeError("A SpineAI computation is already running.")
        argv = slicer_bridge.cli_command(self._pythonSlicer(), command, list(args), device)
        env = qt.QProcessEnvironment()
        for key, value in slicer_bridge.cli_environment().items():
            env.insert(key, value)
        self.output, self.cancelled, self.workDir = [], False, workDir
        self.process = qt.QProcess()
        self.process.setProcessEnvironment(env)
        self.process.setProcessChannelMode(qt.QProcess.MergedChannels)
        self.process.connect("readyReadStandardOutput()", self._readOutput)
        self.process.connect("finished(int)", self._finished)
        self.process.connect("errorOccurred(QProcess::ProcessError)", self._failedToStart)
        logging.info("SpineAI: " + " ".join(argv))
        self.process.start(argv[0], argv[1:])

    def cancel(self):
        from SpineAILib import slicer_bridge

        if self.running:
            self.cancelled = True
            pid = int(self.process.processId())
            if pid > 0:
                slicer_bridge.kill_process_tree(pid)
            self.process.kill()

    @staticmethod
    def _pythonSlicer():
        import shutil

        return shutil.which("PythonSlicer") or "PythonSlicer"

    def _readOutput(self):
        from SpineAILib import slicer_bridge

        data = bytes(self.process.readAllStandardOutput()).decode("utf-8", errors="replace")
        for line in data.splitlines():
            parsed = slicer_bridge.parse_machine_progress(line)
            if parsed is not None:
                if self.onProgress:
                    self.onProgress(*parsed)
            elif line.strip():
                self.output.append(line)
                logging.info(line)

    def _failedToStart(self, error):
        if error == qt.QProcess.FailedToStart:
            self._end(False, -1, "Could not start PythonSlicer: " + self.process.errorString())

    def _finished(self, exitCode):
        self._readOutput()
        self._end(exitCode == 0 and not self.cancelled, exitCode, "\n".join(self.output))

    def _end(self, ok, exitCode, output):
        from SpineAILib import slicer_bridge

        try:
            if self.onFinished:
                self.onFinished(ok, exitCode, output)
        finally:
            slicer_bridge.remove_work_dir(self.workDir)
            self.workDir = None


DEVICES = ["auto", "cpu", "cuda", "mps"]


def exportVolume(volumeNode, workDir, fileName="input.nrrd"):
    """Write a volume node (geometry included) for the background process; returns the path.
    The copy lives in the run's work folder, which the runner deletes when the run ends."""
    import os

    path = os.path.join(workDir, fileName)
    if not slicer.util.saveNode(volumeNode, path, {"useCompression": 0}):
        raise OSError(f"Could not write {path}")
    return path


class TaskWidgetMixin:
    """Shared Apply/Cancel/progress behaviour and scene life cycle of the SpineAI task widgets.

    The widget's .ui must have inputSelector, deviceComboBox, applyButton, cancelButton,
    progressBar and statusLabel. The widget implements ``checkAndStart()`` (validate, then call
    ``startTask``) and ``onTaskSucceeded(output)``. The selected input volume lives in the
    module's parameter node (reference "InputVolume"), which is re-created after File > Close
    Scene; a computation still running when the scene closes is cancelled.
    """

    def setupTaskControls(self):
        self.runner = BackgroundCliRunner(self.onProgress, self.onRunnerFinished)
        self._workDir = None
        self._taskVolume = None
        self._sceneObservers = []
        self.ui.deviceComboBox.addItems(DEVICES)
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.cancelButton.connect("clicked(bool)", self.runner.cancel)
        self.ui.inputSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onInputChanged)
        self.ui.cancelButton.enabled = False
        self.ui.progressBar.setValue(0)
        for event, callback in ((slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose),
                                (slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)):
            self._sceneObservers.append(slicer.mrmlScene.AddObserver(event, callback))
        self.initializeParameterNode()

    def cleanupTaskControls(self):
        for tag in getattr(self, "_sceneObservers", []):
            slicer.mrmlScene.RemoveObserver(tag)
        self._sceneObservers = []
        if getattr(self, "runner", None) is not None:
            self.runner.cancel()

    def cleanup(self):
        self.cleanupTaskControls()

    def initializeParameterNode(self):
        """Select the parameter node's input volume (or the first suitable one) in the GUI."""
        parameterNode = self.logic.getParameterNode()
        volume = parameterNode.GetNodeReference("InputVolume")
        if volume is None:
            volume = self.ui.inputSelector.currentNode()
        self.ui.inputSelector.setCurrentNode(volume)
        self.onInputChanged(volume)

    def onInputChanged(self, node=None):
        self.logic.getParameterNode().SetNodeReferenceID("InputVolume", node.GetID() if node else None)
        self.updateButtons()

    def onSceneStartClose(self, caller=None, event=None):
        # Results of a run on a closing scene have nowhere to go.
        self.runner.cancel()
        self._taskVolume = None

    def onSceneEndClose(self, caller=None, event=None):
        self.ui.statusLabel.text = ""
        self.ui.progressBar.setValue(0)
        self.initializeParameterNode()

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

    def newWorkDir(self, task):
        import tempfile

        self._workDir = tempfile.mkdtemp(prefix=f"spineai-{task}-")
        return self._workDir

    def startTask(self, command, args, message):
        self._taskVolume = self.ui.inputSelector.currentNode()
        self.ui.applyButton.enabled = False
        self.ui.cancelButton.enabled = True
        self.ui.progressBar.setValue(0)
        self.ui.statusLabel.text = message
        try:
            self.runner.start(command, args, self.ui.deviceComboBox.currentText, workDir=self._workDir)
        except Exception:
            from SpineAILib import slicer_bridge

            slicer_bridge.remove_work_dir(self._workDir)
            self.ui.cancelButton.enabled = False
            raise

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
        if self._taskVolume is None or self._taskVolume.GetScene() is not slicer.mrmlScene:
            self.ui.statusLabel.text = "The input volume is gone; the result was not loaded."
            return
        try:
            self.onTaskSucceeded(output)
        except Exception as exc:  # noqa: BLE001
            showError(f"Could not read the result: {exc}", exc)
