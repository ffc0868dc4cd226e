document.addEventListener('loadedmetadata', e => {
  e.target.dataset.duration = e.target.duration;
  document.body.dataset.audioLoaded = document.querySelectorAll('audio[data-duration]').length;
}, true);
