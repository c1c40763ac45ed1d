// A tiny client-side renderer: the essay's text only exists after this script runs.
fetch('/app/essay.json')
  .then(function (response) { return response.json(); })
  .then(function (essay) {
    document.title = essay.title + ' | Maya Okafor';
    var root = document.getElementById('root');
    root.innerHTML = '';
    var article = document.createElement('article');
    var heading = document.createElement('h1');
    heading.textContent = essay.title;
    article.appendChild(heading);
    essay.paragraphs.forEach(function (text) {
      var p = document.createElement('p');
      p.textContent = text;
      article.appendChild(p);
    });
    root.appendChild(article);
  });
