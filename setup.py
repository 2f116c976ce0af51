import os.path as osp

from setuptools import find_packages, setup


def get_version():
    ns = {}
    with open(osp.join(osp.dirname(__file__), 'mmvlg', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), ns)
    return ns['__version__']


def parse_requirements(fname):
    path = osp.join(osp.dirname(__file__), 'requirements', fname)
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]


setup(
    name='mmvlg',
    version=get_version(),
    description='OpenMMLab-style toolbox for visual grounding and vision-language pre-training',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'demo', 'tests', 'projects')),
    include_package_data=True,
    # word vocabularies of the offline text encoders (HFTextEncoder tokenizer=dict(type='word', vocab='synthref'))
    package_data={'mmvlg': ['models/language_models/vocabs/*.txt']},
    python_requires='>=3.9',
    install_requires=parse_requirements('runtime.txt'),
    extras_require={'tests': parse_requirements('tests.txt')},
    license='Apache License 2.0',
    zip_safe=False,
)
