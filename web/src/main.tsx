/** Entry: a two-page app. `/` creates or joins a session (join links land here), `/s/<id>` is the session. */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { HomePage } from './components/HomePage.js';
import { SessionPage } from './components/SessionPage.js';
import { parseJoinLink } from './identity.js';
import './styles.css';

export type Navigate = (path: string, opts?: { replace?: boolean }) => void;

function App() {
  const [where, setWhere] = useState({ path: window.location.pathname, search: window.location.search });
  useEffect(() => {
    const onPop = () => setWhere({ path: window.location.pathname, search: window.location.search });
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);
  const navigate: Navigate = (to, opts = {}) => {
    if (opts.replace) window.history.replaceState(null, '', to);
    else window.history.pushState(null, '', to);
    setWhere({ path: window.location.pathname, search: window.location.search });
    window.scrollTo(0, 0);
  };
  const session = /^\/s\/([^/]+)\/?$/.exec(where.path);
  if (session) {
    const id = decodeURIComponent(session[1]!);
    return <SessionPage key={id} sessionId={id} navigate={navigate} />;
  }
  return <HomePage join={parseJoinLink(where.search)} navigate={navigate} />;
}

render(<App />, document.getElementById('app')!);
