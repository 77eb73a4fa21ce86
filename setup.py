"""tfp_robust: Bayesian neural networks under gradient-based attacks."""

import setuptools

setuptools.setup(
    name='tfp_robust',
    version='0.1.0',
    description=('Robustness of Bayesian neural networks (VI with tfp.layers, '
                 'HMC with tfp.mcmc) to gradient-based attacks.'),
    long_description=open('README.md').read() if __import__('os').path.exists(
        'README.md') else '',
    long_description_content_type='text/markdown',
    packages=setuptools.find_packages(include=['tfp_robust', 'tfp_robust.*']),
    python_requires='>=3.10',
    install_requires=[
        'tensorflow>=2.16',
        'tensorflow-probability[tf]>=0.24',
        'tf-keras>=2.16',
        'tensorflow-datasets>=4.9',
        'importlib_resources',
        'tensorboard',
        'absl-py',
        'ml-collections',
        'matplotlib',
        'pandas',
        'scikit-learn',
        'numpy',
    ],
    extras_require={'test': ['pytest>=7']},
)
