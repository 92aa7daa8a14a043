import { StrictMode, useState } from 'react'
import { createRoot } from 'react-dom/client'
import './style.css'

function App() {
  const [count, setCount] = useState(0)
  return (
    <main>
      <h1>Built by Pier</h1>
      <button onClick={() => setCount(count + 1)}>count is {count}</button>
    </main>
  )
}

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <App />
  </StrictMode>,
)
