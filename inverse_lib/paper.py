"""The paper's own published numbers (Ren, Padilla & Malof 2020), to set beside ours.

These are the only typed-in numbers in the book, and they are the paper's, quoted: Table 3 (r_200, the mean
squared re-simulation error of the best of 200 proposals) and Table 2 (inference time per proposal on the
authors' GPU, in milliseconds). The INN is not applicable to D4.
"""
TASKS = ("ballistics", "sine_wave", "robotic_arm", "meta_material")
LABELS = {"ballistics": "D1 ballistics", "sine_wave": "D2 sine wave", "robotic_arm": "D3 robotic arm",
          "meta_material": "D4 meta-material"}
MODEL_LABELS = {"na": "NA", "tandem": "Tandem", "cvae": "cVAE", "inn": "INN", "cinn": "cINN", "mdn": "MDN",
                "random": "random search", "adjoint": "classical adjoint"}
# The paper's colours (Fig. 3), and ours for the models it did not have.
COLOURS = {"na": "tab:green", "tandem": "tab:blue", "cvae": "tab:red", "cinn": "magenta", "inn": "black",
           "mdn": "tab:orange", "random": "tab:gray", "adjoint": "tab:olive"}

R200 = {
    "ballistics": {"na": 2.50e-7, "tandem": 7.84e-3, "cvae": 2.80e-7, "inn": 2.20e-3, "cinn": 1.18e-6},
    "sine_wave": {"na": 1.33e-7, "tandem": 1.17e-2, "cvae": 4.34e-5, "inn": 1.24e-4, "cinn": 2.72e-5},
    "robotic_arm": {"na": 6.61e-7, "tandem": 5.44e-4, "cvae": 1.25e-2, "inn": 2.12e-4, "cinn": 8.80e-7},
    "meta_material": {"na": 6.67e-5, "tandem": 2.53e-3, "cvae": 5.49e-4, "cinn": 4.45e-4},
}

INFERENCE_MS = {
    "ballistics": {"na": 1.36, "tandem": 0.31, "cvae": 0.29, "inn": 0.35, "cinn": 0.78},
    "sine_wave": {"na": 1.22, "tandem": 0.19, "cvae": 0.19, "inn": 0.19, "cinn": 0.20},
    "robotic_arm": {"na": 1.12, "tandem": 0.19, "cvae": 0.31, "inn": 0.21, "cinn": 0.23},
    "meta_material": {"na": 46.10, "tandem": 0.5, "cvae": 0.47, "cinn": 0.25},
}
