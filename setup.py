import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
# What mim and MMEngine's `mmvlg::` config paths read from the installed package (mmvlg/.mim/...).
MIM_FILES = ('configs', 'tools', 'demo', 'model-index.yml')


def get_version():
    ns = {}
    with open(osp.join(osp.dirname(__file__), 'mmvlg', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), ns)
    return ns['__version__']


def parse_requirements(fname):
    path = osp.join(osp.dirname(__file__), 'requirements', fname)
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]


def add_mim_extension():
    """Fill ``mmvlg/.mim`` with the repository's configs, tools, demo and model index, as OpenMMLab packages do.

    An editable install (``pip install -e .``: setuptools' ``editable_wheel``, or ``develop``) gets relative
    symbolic links, so edits in ``configs/`` show through; a wheel or sdist gets copies. Other setup.py
    commands (metadata, egg_info) leave the folder as it is. ``mmvlg/.mim`` is ignored by git.
    """
    if {'develop', 'editable_wheel'} & set(sys.argv):
        mode = 'symlink'
    elif {'bdist_wheel', 'sdist', 'build', 'build_py', 'install'} & set(sys.argv):
        mode = 'copy'
    else:
        return
    mim_dir = osp.join(HERE, 'mmvlg', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(HERE, name)
        dst = osp.join(mim_dir, name)
        if not osp.exists(src):
            raise FileNotFoundError(f'setup.py: {src} is missing; mmvlg/.mim/{name} cannot be made')
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


add_mim_extension()

setup(
    name='mmvlg',
    version=get_version(),
    description='OpenMMLab-style toolbox for visual grounding and vision-language pre-training',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'demo', 'tests', 'projects')),
    include_package_data=True,
    # word vocabularies of the offline text encoders (HFTextEncoder tokenizer=dict(type='word', vocab='synthref'))
    # and mmvlg/.mim (configs, tools, demo, model index; see add_mim_extension)
    package_data={'mmvlg': ['models/language_models/vocabs/*.txt', '.mim/model-index.yml', '.mim/configs/**/*',
                            '.mim/tools/**/*', '.mim/demo/**/*']},
    python_requires='>=3.9',
    install_requires=parse_requirements('runtime.txt'),
    extras_require={'tests': parse_requirements('tests.txt'), 'deployment': parse_requirements('deployment.txt')},
    license='Apache License 2.0',
    zip_safe=False,
)
