/**
 * @module
 * The WSDL of the simulated legacy payment gateway: SOAP 1.1, document/literal, one operation
 * `ProcessPayment(orderId, amount, currency)` → `{ status, authCode?, reason? }`. Written by hand, as a
 * legacy system's contract would be; the server fills in its own address.
 */

/** The target namespace of every element of the gateway's messages. */
export const PAYMENT_NAMESPACE = "http://legacy.bitvelocity.example/payment/v1";

/** The SOAPAction header of `ProcessPayment`. */
export const PROCESS_PAYMENT_ACTION = `${PAYMENT_NAMESPACE}/ProcessPayment`;

/**
 * The WSDL document with `endpointUrl` as the service address. Amounts travel as decimal strings
 * (`xsd:string` with a pattern) rather than `xsd:decimal`, so no toolkit on either side turns them into
 * floats.
 */
export function paymentWsdl(endpointUrl: string): string {
  if (!URL.canParse(endpointUrl)) throw new TypeError(`"${endpointUrl}" is not a URL; pass the SOAP endpoint URL`);
  return `<?xml version="1.0" encoding="UTF-8"?>
<definitions name="LegacyPaymentGateway"
  targetNamespace="${PAYMENT_NAMESPACE}"
  xmlns="http://schemas.xmlsoap.org/wsdl/"
  xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
  xmlns:tns="${PAYMENT_NAMESPACE}"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <types>
    <xsd:schema targetNamespace="${PAYMENT_NAMESPACE}" elementFormDefault="qualified">
      <xsd:simpleType name="Amount">
        <xsd:restriction base="xsd:string">
          <xsd:pattern value="\\d{1,10}\\.\\d{2}"/>
        </xsd:restriction>
      </xsd:simpleType>
      <xsd:simpleType name="PaymentStatus">
        <xsd:restriction base="xsd:string">
          <xsd:enumeration value="APPROVED"/>
          <xsd:enumeration value="DECLINED"/>
        </xsd:restriction>
      </xsd:simpleType>
      <xsd:element name="ProcessPaymentRequest">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="orderId" type="xsd:string"/>
            <xsd:element name="amount" type="tns:Amount"/>
            <xsd:element name="currency" type="xsd:string"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:element name="ProcessPaymentResponse">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="status" type="tns:PaymentStatus"/>
            <xsd:element name="authCode" type="xsd:string" minOccurs="0"/>
            <xsd:element name="reason" type="xsd:string" minOccurs="0"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
    </xsd:schema>
  </types>
  <message name="ProcessPaymentInput">
    <part name="parameters" element="tns:ProcessPaymentRequest"/>
  </message>
  <message name="ProcessPaymentOutput">
    <part name="parameters" element="tns:ProcessPaymentResponse"/>
  </message>
  <portType name="PaymentPortType">
    <operation name="ProcessPayment">
      <input message="tns:ProcessPaymentInput"/>
      <output message="tns:ProcessPaymentOutput"/>
    </operation>
  </portType>
  <binding name="PaymentBinding" type="tns:PaymentPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="ProcessPayment">
      <soap:operation soapAction="${PROCESS_PAYMENT_ACTION}"/>
      <input><soap:body use="literal"/></input>
      <output><soap:body use="literal"/></output>
    </operation>
  </binding>
  <service name="PaymentService">
    <port name="PaymentPort" binding="tns:PaymentBinding">
      <soap:address location="${endpointUrl}"/>
    </port>
  </service>
</definitions>
`;
}
