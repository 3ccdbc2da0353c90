// Tests mint certificates with the same CA module Warden uses (runtime/certificate-authority.ts).
export { createCertificateAuthority, type CertificateAuthority, type CertificateRequest, type IssuedCertificate } from '../../runtime/certificate-authority.js';
