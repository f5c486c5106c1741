"""Shipped pretrained models: ``<name>.safetensors`` with its card ``<name>.json``.

The weights file is written by :func:`deepfocus_radio.models.save_model` (configuration in
its header); the card is a JSON object with the fields of
:class:`deepfocus_radio.models.PretrainedInfo`: ``name``, ``file``, ``sha256`` (of the
weights file, checked on every load), ``config``, ``normalization``, ``training_ranges``,
``scores``, ``licence`` and ``description``. Write both with
:func:`deepfocus_radio.models.save_pretrained`; ``deepfocus models --pretrained`` lists them.
"""
