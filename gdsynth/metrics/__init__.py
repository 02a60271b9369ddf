"""Pure metric functions shared by several layers (training, detection, evaluation), below all of
them so that none imports a higher one: lesion-wise matching by the MSSEG/Anima rule
(:mod:`.lesions`), ROC analysis (:mod:`.roc`) and robust statistics (:mod:`.robust`). NumPy/SciPy
on arrays only; no file I/O, no torch.
"""
