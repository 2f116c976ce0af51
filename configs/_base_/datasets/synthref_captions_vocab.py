# Every word of the SynthRef captions and region phrases (mmvlg.datasets.synthetic.caption_vocabulary(); a test
# checks it): the word vocabulary of the tiny FIBER coarse and X-VLM pre-trainings and of the configs that load them.
caption_vocab = [
    ',', ':', 'a', 'above', 'and', 'below', 'big', 'blue', 'bottommost', 'circle', 'circles', 'diamond', 'diamonds',
    'five', 'four', 'from', 'green', 'left', 'leftmost', 'of', 'purple', 'red', 'right', 'rightmost', 'six', 'small',
    'square', 'squares', 'the', 'three', 'to', 'topmost', 'triangle', 'triangles', 'two', 'white', 'yellow'
]
